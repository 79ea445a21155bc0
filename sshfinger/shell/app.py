"""
What the shell's parts share: L{ShellApp} (one per server), L{Context} (one per session) and what a command
returns (L{Reply}, L{Interaction}, L{CommandError}).

The SSH session builds a L{Context} from the L{ShellApp} for each shell or exec channel; commands, the interactive
shell and the manhole read everything they need from it, typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.conch.ssh.keys import Key
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account, Actor
from sshfinger.store.interfaces import IUserStore

#: Fields a user (not an admin) may change on their own account.
USER_FIELDS = frozenset({"real_name", "status", "plan", "keys", "fediverse"})

#: Edits (store writes and password changes) one ordinary login may make per minute, on average (C{--edit-rate}).
EDIT_RATE = 30.0
#: How many times more an admin may edit (bulk changes from scripts are normal for admins).
ADMIN_EDIT_FACTOR = 20.0


class CommandError(Exception):
    """
    A command failed; C{str(error)} is the one line shown to the user.
    """


@dataclass
class Reply:
    """
    What a command prints.

    @ivar lines: output lines (no line endings).
    @ivar exit: whether the session should end (C{quit}).
    @ivar clear: whether the shell should clear the screen first.
    @ivar manhole: whether the shell should open the Python manhole.
    """

    lines: list[str] = field(default_factory=list)
    exit: bool = False
    clear: bool = False
    manhole: bool = False


@dataclass
class Interaction:
    """
    A command that needs more input before it can finish.

    @ivar kind: C{"text"} (lines until a lone C{.}; all of stdin in exec), C{"secret"} (a password typed twice
        without echo; one line of stdin in exec) or C{"confirm"} (yes/no; refused in exec unless C{--yes}).
    @ivar prompt: what the shell shows first.
    @ivar finish: called with the text (or C{"yes"}/C{"no"}); returns the final L{Reply}.
    """

    kind: str
    prompt: str
    finish: Callable[[str], Awaitable[Reply]]


Result = Reply | Interaction


class EditRate:
    """
    Per-login edit budgets: a token bucket per login that holds a minute's worth of edits and refills
    continuously, so a person never notices it and a flood from one login is throttled.

    @ivar per_minute: edits per minute for an ordinary login; admins get L{ADMIN_EDIT_FACTOR} times as many.
    """

    def __init__(self, clock: IReactorTime, per_minute: float = EDIT_RATE) -> None:
        """
        @param clock: for the refill.
        @param per_minute: see L{per_minute}.
        """
        self.clock = clock
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def spend(self, login: str, admin: bool) -> float:
        """
        Take one edit from C{login}'s budget.

        @return: 0 if the edit may go ahead, else the seconds until one is allowed (nothing is taken then).
        """
        capacity = self.per_minute * (ADMIN_EDIT_FACTOR if admin else 1.0)
        now = self.clock.seconds()
        tokens, then = self._buckets.get(login, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * capacity / 60.0)
        if tokens < 1.0:
            self._buckets[login] = (tokens, now)
            return (1.0 - tokens) * 60.0 / capacity
        self._buckets[login] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget full buckets (logins idle for a minute or more)
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * capacity / 60 < capacity}
        return 0.0


@dataclass
class Context:
    """
    Everything a command may use.

    @ivar store: the user store.
    @ivar finger: the finger service (C{user(login, verbose)}, C{listing()}).
    @ivar login: the authenticated login.
    @ivar actor: the actor recorded on changes.
    @ivar admins: logins made admin on the command line (C{--admin}).
    @ivar set_password: writes a password for a login (in a thread), or L{None} without a passwd file.
    @ivar password_change_recorded: whether C{set_password} records the change in the audit trail itself (the
        store's does, with C{--auth store}); otherwise C{passwd} records it.
    @ivar parse_key: validates an C{authorized_keys} line, returning C{(key, normalized line)}.
    @ivar fingerprint: the C{SHA256:} fingerprint of a parsed key.
    @ivar interactive: whether a person is typing (a shell) rather than a script (exec).
    @ivar edits: the per-login edit budgets, or L{None} for no limit.
    """

    store: IUserStore
    finger: FingerService
    login: str
    actor: Actor
    admins: frozenset[str] = frozenset()
    set_password: Callable[[str, str], Deferred[None]] | None = None
    password_change_recorded: bool = False
    parse_key: Callable[[str], tuple[Key, str]] | None = None
    fingerprint: Callable[[Key], str] | None = None
    interactive: bool = True
    edits: EditRate | None = None

    @property
    def is_admin(self) -> bool:
        """
        Whether the login is an admin now (named by C{--admin}, or marked admin in the store).
        """
        if self.login in self.admins:
            return True
        account = self.store.peek(self.login)
        return account is not None and account.role == "admin"

    def require_admin(self, what: str) -> None:
        """
        @raise CommandError: unless the login is an admin.
        """
        if not self.is_admin:
            raise CommandError(f"permission denied: only admins may {what}")

    def require_edit(self, login: str, field_names: Iterable[str]) -> None:
        """
        @raise CommandError: unless the login may change these fields of C{login}'s account.
        """
        if self.is_admin:
            return
        if login.lower() != self.login:
            raise CommandError("permission denied: you may only change your own account")
        for name in field_names:
            if name not in USER_FIELDS:
                raise CommandError(f"permission denied: only admins may change {name}")

    def spend_edit(self) -> None:
        """
        Count one edit against this login's budget.

        @raise CommandError: when the budget is spent (nothing is changed then).
        """
        if self.edits is None:
            return
        wait = self.edits.spend(self.login, self.is_admin)
        if wait:
            limit = self.edits.per_minute * (ADMIN_EDIT_FACTOR if self.is_admin else 1.0)
            raise CommandError(
                f"too many changes: at most {limit:g} a minute; nothing changed, try again in {wait:.0f} s"
            )

    def may_see(self, account: Account | None) -> bool:
        """
        Whether this login may know that C{account} exists: any account for an admin, the login's own, and
        accounts not hidden.  To everyone else a hidden account and an unknown one look the same.
        """
        if account is None:
            return False
        return not account.hidden or account.login == self.login or self.is_admin

    def visible(self, login: str) -> Account | None:
        """
        The account C{login}, or L{None} if it does not exist or this login may not see it (L{may_see}).
        """
        account = self.store.peek(login)
        return account if self.may_see(account) else None


@dataclass
class ShellApp:
    """
    What every SSH session shares: the store, the finger answers and the settings.

    @ivar store: the user store.
    @ivar finger: the finger service.
    @ivar clock: for idle timeouts, edit budgets and coalesced redraws.
    @ivar hostname: shown in the prompt.
    @ivar admins: logins that are admins whatever the store says (C{--admin}).
    @ivar idle_timeout: seconds of shell inactivity before the session is closed.
    @ivar set_password: writes a password into the passwd file, or L{None} without one.
    @ivar password_change_recorded: see L{Context.password_change_recorded}.
    @ivar parse_key: validates an C{authorized_keys} line.
    @ivar fingerprint: the C{SHA256:} fingerprint of a key.
    @ivar edit_rate: edits per minute per ordinary login (C{--edit-rate}); admins get more; 0 for no limit.
    @ivar extra: names for the manhole (C{services}, C{reactor}).
    """

    store: IUserStore
    finger: FingerService
    clock: IReactorTime
    hostname: str = "sshfinger"
    admins: frozenset[str] = frozenset()
    idle_timeout: float = 15 * 60
    set_password: Callable[[str, str], Deferred[None]] | None = None
    password_change_recorded: bool = False
    parse_key: Callable[[str], tuple[Key, str]] | None = None
    fingerprint: Callable[[Key], str] | None = None
    edit_rate: float = EDIT_RATE
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """
        One set of edit budgets for all the sessions of the server.
        """
        self.edits = EditRate(self.clock, self.edit_rate) if self.edit_rate > 0 else None

    def context(self, login: str, channel: str, peer: str, interactive: bool) -> Context:
        """
        Build the command context of one session.
        """
        return Context(
            store=self.store,
            finger=self.finger,
            login=login,
            actor=Actor(login, channel, peer),
            admins=self.admins,
            set_password=self.set_password,
            password_change_recorded=self.password_change_recorded,
            parse_key=self.parse_key,
            fingerprint=self.fingerprint,
            interactive=interactive,
            edits=self.edits,
        )
