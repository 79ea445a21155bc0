"""
The account record, the rules its fields obey, and the records of who changed what.

Logins are case-insensitive: they are validated by L{LOGIN_RULE} and stored lower-case, so C{"Alice"} and
C{"alice"} name the same account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sshfinger.model.errors import InvalidValue

LOGIN_RULE = (
    "a login is 1 to 32 characters: a letter or '_' first, then letters, digits, '_', '.' or '-'"
)
_LOGIN_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\Z")

ROLES = ("user", "admin")

#: Largest length of each text field, in characters.
TEXT_LIMITS: Mapping[str, int] = {
    "real_name": 100,
    "status": 200,
    "office": 100,
    "phone": 50,
    "plan": 8000,
}

#: Fields a change may name, in display order.
EDITABLE_FIELDS = ("real_name", "status", "plan", "office", "phone", "fediverse", "hidden", "role", "keys")

#: Fields a change may name that no one types: set by the front ends after they checked them (a plan's
#: signature is verified by the one that attaches it, and again whenever it is shown).
INTERNAL_FIELDS = ("plan_signature",)

#: Every field a change may name, for the store and the audit trail.
CHANGE_FIELDS = EDITABLE_FIELDS + INTERNAL_FIELDS

#: Longest stored plan signature (an armored C{ssh-keygen -Y sign} file).
MAX_PLAN_SIGNATURE = 8192

#: Short names accepted wherever a person types a field name.
FIELD_ALIASES: Mapping[str, str] = {"name": "real_name", "realname": "real_name"}

#: Longest fediverse alias (an https URL), in characters.
MAX_FEDIVERSE = 300
_FEDIVERSE_RE = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?\Z")

#: Largest number of authorized keys one account may hold, and the longest key line.
MAX_KEYS = 32
MAX_KEY_LINE = 16384


def normalize_login(login: str) -> str:
    """
    Check a login against L{LOGIN_RULE} and return its stored (lower-case) form.

    @raise InvalidValue: if the login breaks the rule.
    """
    folded = login.lower()
    if not _LOGIN_RE.match(folded):
        raise InvalidValue(f"invalid login {login!r}: {LOGIN_RULE}")
    return folded


def is_valid_login(login: str) -> bool:
    """
    Tell whether C{login} obeys L{LOGIN_RULE} (in any case).
    """
    return _LOGIN_RE.match(login.lower()) is not None


def field_name(name: str) -> str:
    """
    Resolve a typed field name (C{"name"}, C{"Status"}, ...) to an entry of L{EDITABLE_FIELDS}.

    @raise InvalidValue: for an unknown field.
    """
    key = name.lower().replace("-", "_")
    key = FIELD_ALIASES.get(key, key)
    if key not in CHANGE_FIELDS:
        raise InvalidValue(f"unknown field {name!r}: choose from {', '.join(EDITABLE_FIELDS)}")
    return key


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "yes", "true", "on"):
        return True
    if text in ("0", "no", "false", "off"):
        return False
    raise InvalidValue(f"not a yes/no value: {value!r}")


def normalize_field(name: str, value: object) -> object:
    """
    Check a new value for one field and return it in stored form.

    Text fields keep what was typed (control characters are removed only on output) but are bounded in length;
    C{status}, C{real_name}, C{office} and C{phone} are single lines; C{fediverse} is an https URL or empty
    (see L{_normalize_fediverse}).  C{hidden} takes yes/no words, C{role} one
    of L{ROLES}, C{keys} a sequence of C{authorized_keys} lines (syntax is checked by the SSH layer).

    @raise InvalidValue: with a one-line reason.
    """
    if name in TEXT_LIMITS:
        if not isinstance(value, str):
            raise InvalidValue(f"{name} must be text")
        text = value.replace("\r\n", "\n")
        if name == "plan":
            text = text.rstrip("\n")
        elif "\n" in text or "\r" in text:
            raise InvalidValue(f"{name} must be a single line")
        if len(text) > TEXT_LIMITS[name]:
            raise InvalidValue(f"{name} is longer than {TEXT_LIMITS[name]} characters")
        return text
    if name == "fediverse":
        return _normalize_fediverse(value)
    if name == "hidden":
        return _parse_bool(value)
    if name == "role":
        role = str(value).strip().lower()
        if role not in ROLES:
            raise InvalidValue(f"role must be one of {', '.join(ROLES)}")
        return role
    if name == "keys":
        if isinstance(value, str):
            raise InvalidValue("keys must be a sequence of authorized_keys lines")
        lines = tuple(str(line).strip() for line in value)  # type: ignore[attr-defined]
        if len(lines) > MAX_KEYS:
            raise InvalidValue(f"at most {MAX_KEYS} keys per account")
        for line in lines:
            if not line or "\n" in line or len(line) > MAX_KEY_LINE:
                raise InvalidValue("each key must be one non-empty authorized_keys line")
        return lines
    if name == "plan_signature":
        if not isinstance(value, str):
            raise InvalidValue("plan_signature must be text")
        text = value.strip()
        if len(text) > MAX_PLAN_SIGNATURE:
            raise InvalidValue(f"plan signature is longer than {MAX_PLAN_SIGNATURE} characters")
        return text + "\n" if text else ""
    raise InvalidValue(f"unknown field {name!r}: choose from {', '.join(EDITABLE_FIELDS)}")


def _normalize_fediverse(value: object) -> str:
    """
    A fediverse alias is empty (unset) or an https URL of printable ASCII (C{https://mastodon.example/@alice}),
    no longer than L{MAX_FEDIVERSE}: it is shown on the web and returned by WebFinger as a link.
    """
    if not isinstance(value, str):
        raise InvalidValue("fediverse must be text")
    text = value.strip()
    if not text:
        return ""
    if len(text) > MAX_FEDIVERSE:
        raise InvalidValue(f"fediverse is longer than {MAX_FEDIVERSE} characters")
    if not _FEDIVERSE_RE.match(text) or '"' in text or "<" in text or ">" in text or "\\" in text:
        raise InvalidValue("fediverse must be an https URL, such as https://mastodon.example/@alice")
    return text


def normalize_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """
    Normalize every field of a change set with L{field_name} and L{normalize_field}.
    """
    if not changes:
        raise InvalidValue("nothing to change")
    result: dict[str, object] = {}
    for name, value in changes.items():
        key = field_name(name)
        result[key] = normalize_field(key, value)
    return result


class Account(NamedTuple):
    """
    One account as every service sees it.  Instances are immutable: a change makes a new one.

    A named tuple rather than a dataclass: a store of a million accounts builds a million of them at start-up,
    and a tuple is built several times faster.

    @ivar login: the unique, lower-case login.
    @ivar real_name: the person's name.
    @ivar status: a one-line status ("In a meeting").
    @ivar plan: a multi-line plan.
    @ivar office: optional office, shown by C{/W} queries.
    @ivar phone: optional phone, shown by C{/W} queries.
    @ivar hidden: like C{~/.nofinger}: finger treats the account as unknown.
    @ivar role: C{"user"} or C{"admin"}.
    @ivar keys: the account's SSH public keys as C{authorized_keys} lines.
    @ivar updated_at: POSIX time of the last change.
    @ivar updated_by: login (or tool) that made the last change.
    @ivar fediverse: the account's fediverse alias (an https URL, or empty), shown by C{/W} and WebFinger.
    @ivar plan_signature: an armored SSH signature of the plan (C{ssh-keygen -Y sign -n sshfinger-plan}), or
        empty; a change of the plan that does not set it too clears it.
    """

    login: str
    real_name: str = ""
    status: str = ""
    plan: str = ""
    office: str = ""
    phone: str = ""
    hidden: bool = False
    role: str = "user"
    keys: tuple[str, ...] = ()
    updated_at: float = 0.0
    updated_by: str = ""
    fediverse: str = ""
    plan_signature: str = ""

    def with_changes(self, changes: Mapping[str, object], by: str, at: float) -> Account:
        """
        Return a copy with C{changes} (already normalized) applied and the update stamp set.

        A new plan drops the plan's signature unless the same change sets one: a signature is of one text.
        """
        if "plan" in changes and changes["plan"] != self.plan and "plan_signature" not in changes:
            changes = {**changes, "plan_signature": ""}
        return self._replace(**changes, updated_at=at, updated_by=by)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Actor:
    """
    Who makes a change, for C{updated_by} and the audit trail.

    @ivar login: the authenticated login, or a tool name such as C{"sshfinger-cli"}.
    @ivar channel: where the change came from: C{"shell"}, C{"exec"}, C{"manhole"}, C{"cli"}, C{"import"}.
    @ivar peer: the peer address (C{"127.0.0.1:50022"}), empty for local tools.
    """

    login: str
    channel: str
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """
    One recorded change to one field of one account.

    @ivar at: POSIX time of the commit.
    @ivar actor: who made it.
    @ivar login: the account changed.
    @ivar action: C{"create"}, C{"update"} or C{"delete"}.
    @ivar field: the field changed (empty for create and delete).
    @ivar old: the old value as text, or L{None}.
    @ivar new: the new value as text, or L{None}.
    """

    at: float
    actor: Actor
    login: str
    action: str
    field: str = ""
    old: str | None = None
    new: str | None = None


def field_text(name: str, value: object) -> str:
    """
    Render a stored field value as text for the audit trail.
    """
    if name == "hidden":
        return "yes" if value else "no"
    if name == "keys":
        return "\n".join(value)  # type: ignore[arg-type]
    return str(value)


def diff(old: Account | None, new: Account | None, actor: Actor, at: float) -> list[Change]:
    """
    List the L{Change}s that turn C{old} into C{new} (either may be L{None} for create or delete).
    """
    if old is None and new is None:
        return []
    if new is None:
        assert old is not None
        return [Change(at, actor, old.login, "delete")]
    changes = [] if old is not None else [Change(at, actor, new.login, "create")]
    base = old if old is not None else Account(new.login)
    for name in CHANGE_FIELDS:
        before, after = getattr(base, name), getattr(new, name)
        if before != after:
            changes.append(
                Change(at, actor, new.login, "update", name, field_text(name, before), field_text(name, after))
            )
    return changes


#: The shortest password accepted by default (C{--min-password-length}).
MIN_PASSWORD_LENGTH = 10


def check_password_strength(password: str, min_length: int = MIN_PASSWORD_LENGTH) -> None:
    """
    Refuse a password too weak to store: shorter than C{min_length} characters, or only spaces.

    @raise ValueError: with one line saying why.
    """
    if not password.strip():
        raise ValueError("empty password refused")
    if len(password) < min_length:
        raise ValueError(f"password too short: at least {min_length} characters required")


__all__ = [
    "LOGIN_RULE",
    "ROLES",
    "CHANGE_FIELDS",
    "MIN_PASSWORD_LENGTH",
    "EDITABLE_FIELDS",
    "INTERNAL_FIELDS",
    "Account",
    "Actor",
    "Change",
    "check_password_strength",
    "diff",
    "field_name",
    "field_text",
    "is_valid_login",
    "normalize_changes",
    "normalize_field",
    "normalize_login",
]

