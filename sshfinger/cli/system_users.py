"""
System users as classic fingerd serves them: C{sshfinger import-system} reads the accounts of the password
database (a UID range, by default the distribution's normal users from C{/etc/login.defs}) with their GECOS name,
office and phone, C{~/.project} (the status), C{~/.plan} and C{~/.pgpkey} (the plan), and honours C{~/.nofinger}.

Reading users' files is the classic fingerd hole, so each file is opened relative to the home directory's
descriptor, without following a symbolic link (C{O_NOFOLLOW}), without blocking on a FIFO (C{O_NONBLOCK}); only a
regular file owned by the user, in a home directory owned by the user, of at most L{FILE_CAP} bytes, is read.
Escape sequences and control characters are removed.  Whatever is refused or cleaned is reported, one line each.

A later import changes only the fields the import itself wrote last: a field edited since (over SSH, with the
tool) is kept unless C{--overwrite}, and the import says so.  The scan does blocking file I/O: the server runs it
in a thread (L{SystemUsersService}), never on the reactor.
"""

from __future__ import annotations

import argparse
import errno
import os
import pwd
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from sshfinger.finger.render import sanitize
from sshfinger.model.account import TEXT_LIMITS, Actor, is_valid_login
from sshfinger.store.cached import CachedStore

#: The channel of the changes an import makes (the audit trail's "how"); fields it wrote last are its own.
CHANNEL = "system"
#: Most bytes read from one of a user's files; a larger file is skipped.
FILE_CAP = 16 * 1024
#: The UID range when C{/etc/login.defs} does not say (Debian's and most distributions' defaults).
DEFAULT_UID_RANGE = (1000, 60000)
#: How fields are named in reports (as people type them).
FIELD_NAMES = {"real_name": "name"}

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
#: CSI, OSC (to BEL or ST) and two-character escape sequences, 7-bit and the 8-bit CSI.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]|\x9b[0-?]*[ -/]*[@-~]")


class PasswdEntry(NamedTuple):
    """
    What the import uses of one password database entry.
    """

    name: str
    uid: int
    gecos: str
    home: str


class UnsafeFile(Exception):
    """
    A user's file (or home) that is not read; the message says why, in a few words.
    """


@dataclass
class SystemUser:
    """
    One system user as the scan found it.

    @ivar login: the login.
    @ivar fields: the account fields to import.
    @ivar notes: what was skipped or cleaned, one line each.
    @ivar nofinger: the user has a C{~/.nofinger}: nothing is read and the account stays out of finger.
    """

    login: str
    fields: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    nofinger: bool = False


def uid_range(login_defs: str = "/etc/login.defs") -> tuple[int, int]:
    """
    Return (C{UID_MIN}, C{UID_MAX}) from C{login_defs}, with L{DEFAULT_UID_RANGE} for what it does not say.
    """
    values = dict(zip(("UID_MIN", "UID_MAX"), DEFAULT_UID_RANGE))
    try:
        with open(login_defs, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] in values and words[1].isdigit():
                    values[words[0]] = int(words[1])
    except OSError:
        pass
    return values["UID_MIN"], values["UID_MAX"]


def system_entries() -> list[PasswdEntry]:
    """
    The entries of the system's password database (NSS included).
    """
    return [PasswdEntry(p.pw_name, p.pw_uid, p.pw_gecos, p.pw_dir) for p in pwd.getpwall()]


def read_passwd_file(path: str) -> list[PasswdEntry]:
    """
    The entries of a file in C{passwd(5)} format (C{name:x:uid:gid:gecos:home:shell}); malformed lines are skipped.
    """
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) == 7 and parts[2].isdigit():
                entries.append(PasswdEntry(parts[0], int(parts[2]), parts[4], parts[5]))
    return entries


def clean(text: str, multiline: bool) -> tuple[str, bool]:
    """
    Remove escape sequences and control characters (L{sanitize}, line by line) from C{text}.

    @return: the clean text (one line unless C{multiline}), and whether anything was removed.
    """
    text = text.replace("\r\n", "\n")
    stripped = _ESCAPES.sub("", text)
    lines = [sanitize(line) for line in stripped.split("\n")]
    changed = stripped != text or any(line != raw for line, raw in zip(lines, stripped.split("\n")))
    if not multiline:
        lines = lines[:1]
    return "\n".join(line.rstrip() for line in lines).strip("\n"), changed


def open_home(entry: PasswdEntry) -> int:
    """
    Open a user's home directory (not through a symbolic link) and return its descriptor.

    @raise UnsafeFile: if it is missing, not a directory or not owned by the user.
    """
    try:
        fd = os.open(entry.home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if os.path.islink(entry.home) else "not a directory"
            raise UnsafeFile(f"home {entry.home} is {kind}") from None
        raise UnsafeFile(f"home {entry.home}: {e.strerror}") from None
    if os.fstat(fd).st_uid != entry.uid:
        os.close(fd)
        raise UnsafeFile(f"home {entry.home} is not owned by {entry.name}")
    return fd


def read_user_file(home: int, name: str, uid: int, cap: int = FILE_CAP) -> bytes | None:
    """
    Read C{name} in the home directory open as C{home}: only a regular file owned by C{uid}, of at most C{cap}
    bytes, never through a symbolic link and never waiting on a FIFO or device.

    @return: its bytes, or L{None} if there is no such file.
    @raise UnsafeFile: if it is there but refused.
    """
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=home)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UnsafeFile(f"{name} is a symbolic link" if e.errno == errno.ELOOP else f"{name}: {e.strerror}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{name} is not a regular file")
        if info.st_uid != uid:
            raise UnsafeFile(f"{name} is not owned by its user")
        if info.st_size > cap:
            raise UnsafeFile(f"{name} is larger than {cap} bytes")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise UnsafeFile(f"{name} is larger than {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _text(home: int, name: str, entry: PasswdEntry, notes: list[str], multiline: bool, cap: int) -> str | None:
    try:
        data = read_user_file(home, name, entry.uid, cap)
    except UnsafeFile as e:
        notes.append(f"skipped {entry.name}'s {e}")
        return None
    if data is None:
        return None
    text, changed = clean(data.decode("utf-8", "replace"), multiline)
    if changed or "\ufffd" in text:
        notes.append(f"cleaned {entry.name}'s {name}: escape sequences, control characters or invalid UTF-8 removed")
    return text


def _limited(name: str, value: str, entry: PasswdEntry, notes: list[str]) -> str:
    limit = TEXT_LIMITS[name]
    if len(value) > limit:
        notes.append(f"cut {entry.name}'s {FIELD_NAMES.get(name, name)} to {limit} characters")
        return value[:limit]
    return value


def scan_user(entry: PasswdEntry, cap: int = FILE_CAP) -> SystemUser:
    """
    Read one user: GECOS name, office and phone; C{~/.project}'s first line as the status; C{~/.plan} (then
    C{~/.pgpkey}) as the plan; C{~/.nofinger}.
    """
    user = SystemUser(entry.name.lower())
    gecos = entry.gecos.split(",")
    for name, value in zip(("real_name", "office", "phone"), gecos):
        text, changed = clean(value, multiline=False)
        if changed:
            user.notes.append(f"cleaned {entry.name}'s GECOS {FIELD_NAMES.get(name, name)}")
        if text:
            user.fields[name] = _limited(name, text, entry, user.notes)
    try:
        home = open_home(entry)
    except UnsafeFile as e:
        user.notes.append(f"skipped {entry.name}'s files: {e}")
        return user
    try:
        try:
            os.stat(".nofinger", dir_fd=home, follow_symlinks=False)
            user.nofinger = True
            user.fields = {}
            return user
        except FileNotFoundError:
            pass
        project = _text(home, ".project", entry, user.notes, multiline=False, cap=cap)
        if project:
            user.fields["status"] = _limited("status", project, entry, user.notes)
        plan = _text(home, ".plan", entry, user.notes, multiline=True, cap=cap) or ""
        pgpkey = _text(home, ".pgpkey", entry, user.notes, multiline=True, cap=cap)
        if pgpkey:
            plan = f"{plan}\n\nPGP key:\n{pgpkey}".strip("\n")
        if plan:
            user.fields["plan"] = _limited("plan", plan, entry, user.notes)
    finally:
        os.close(home)
    return user


def scan(entries: Iterable[PasswdEntry], uid_min: int, uid_max: int, cap: int = FILE_CAP) -> list[SystemUser]:
    """
    Read every user whose UID is in C{[uid_min, uid_max]} and whose login sshfinger accepts (blocking I/O: call it
    from a thread in the server).
    """
    users = []
    for entry in sorted(entries, key=lambda e: e.name):
        if not uid_min <= entry.uid <= uid_max:
            continue
        if not is_valid_login(entry.name):
            users.append(SystemUser(entry.name, notes=[f"skipped {entry.name!r}: not a valid sshfinger login"]))
            continue
        users.append(scan_user(entry, cap))
    return users


def _owners(changes: Sequence[Any]) -> dict[str, str]:
    """
    The channel that last wrote each field, from an account's changes (oldest first; a delete forgets all).
    """
    owners: dict[str, str] = {}
    for change in changes:
        if change.action == "delete":
            owners.clear()
        elif change.field:
            owners[change.field] = change.actor.channel
    return owners


def _names(fields: Iterable[str]) -> str:
    return ", ".join(FIELD_NAMES.get(name, name) for name in fields)


@inlineCallbacks
def apply(store: CachedStore, users: Sequence[SystemUser], actor: Actor, overwrite: bool = False) -> Any:
    """
    Bring the store in line with C{users}: create the new accounts, update the fields the import wrote last
    (all fields with C{overwrite}), hide the accounts of users with a C{~/.nofinger}.

    @return: a L{Deferred} firing with the report, one line per thing done, kept or skipped.
    """
    report: list[str] = []
    for user in users:
        report.extend(user.notes)
        if not is_valid_login(user.login):
            continue
        existing = store.peek(user.login)
        if user.nofinger:
            if existing is not None and not existing.hidden:
                yield store.update(user.login, {"hidden": True}, actor)
                report.append(f"hid {user.login} (~/.nofinger)")
            continue
        if existing is None:
            yield store.create(user.login, actor, user.fields)
            report.append(f"created {user.login}" + (f": {_names(user.fields)}" if user.fields else ""))
            continue
        wanted = {name: value for name, value in user.fields.items() if getattr(existing, name) != value}
        if not wanted:
            continue
        owners = _owners((yield store.recent_changes(100_000, user.login)))
        kept = [name for name in wanted if not overwrite and owners.get(name) != CHANNEL and getattr(existing, name)]
        changes = {name: value for name, value in wanted.items() if name not in kept}
        if changes:
            yield store.update(user.login, changes, actor)
            report.append(f"updated {user.login}: {_names(changes)}")
        if kept:
            report.append(f"kept {user.login}'s {_names(kept)}: changed since the last import (--overwrite replaces)")
    return report


class SystemUsersService(TimerService):
    """
    C{--system-users}: import the system users at start and then every C{interval} seconds; the scan runs in a
    thread of the reactor's pool, the store changes on the reactor.  Fields edited over SSH are kept.
    """

    log = Logger()

    def __init__(
        self,
        store: CachedStore,
        reactor: Any,
        interval: float,
        uid_bounds: tuple[int, int] | None = None,
        entries: Callable[[], Iterable[PasswdEntry]] = system_entries,
    ) -> None:
        """
        @param store: the running store.
        @param reactor: provides the thread pool and the clock.
        @param interval: seconds between imports.
        @param uid_bounds: the UID range; L{uid_range} by default.
        @param entries: where the password database comes from.
        """
        super().__init__(interval, self.refresh)
        self.clock = reactor
        self.store = store
        self.reactor = reactor
        self.uid_bounds = uid_bounds or uid_range()
        self.entries = entries
        self._reported: set[str] = set()

    def refresh(self) -> Deferred[None]:
        """
        Scan in a thread, then apply; log each line of the report (refusals as warnings).
        """

        def read() -> list[SystemUser]:
            return scan(self.entries(), *self.uid_bounds)

        def report(lines: list[str]) -> None:
            # A line the previous import said already is not said again (the next import finds the same); only
            # the latest import's lines are remembered, so this stays as small as one report.
            said, self._reported = self._reported, set()
            for line in lines:
                if line.startswith(("kept", "skipped", "cleaned", "cut")):
                    self._reported.add(line)
                    if line in said:
                        continue
                if line.startswith(("skipped", "cleaned", "cut")):
                    self.log.warn("System users: {line}", line=line)
                else:
                    self.log.info("System users: {line}", line=line)

        def failed(reason: Any) -> None:
            self.log.failure("System users: the import failed", reason)

        d: Deferred[Any] = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read)
        d.addCallback(lambda users: apply(self.store, users, Actor("sshfinger", CHANNEL)))
        d.addCallback(report)
        d.addErrback(failed)
        return d


def cmd_import_system(args: argparse.Namespace, out: TextIO) -> int:
    """
    Import the system users into the store; print what was done, kept and skipped.
    """
    from sshfinger.cli.common import actor, offline_store, wait

    low, high = uid_range(args.login_defs)
    low = args.uid_min if args.uid_min is not None else low
    high = args.uid_max if args.uid_max is not None else high
    entries = read_passwd_file(args.passwd_file) if args.passwd_file else system_entries()
    users = scan(entries, low, high)
    with offline_store(args.store) as store:
        lines = wait(apply(store, users, actor(CHANNEL), overwrite=args.overwrite))
    for line in lines:
        out.write(line + "\n")
    nofinger = sum(user.nofinger for user in users)
    out.write(f"{len(users)} system user(s) with UID {low}-{high} read ({nofinger} with ~/.nofinger, left out)\n")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """
    Add the C{import-system} command to the tool's subcommands.
    """
    p = sub.add_parser(
        "import-system",
        parents=[common],
        help="import the system users (passwd GECOS, ~/.project, ~/.plan, ~/.pgpkey; ~/.nofinger honoured)",
    )
    p.set_defaults(function=cmd_import_system)
    p.add_argument("--uid-min", type=int, help="lowest UID imported (default: UID_MIN of /etc/login.defs, 1000)")
    p.add_argument("--uid-max", type=int, help="highest UID imported (default: UID_MAX of /etc/login.defs, 60000)")
    p.add_argument("--login-defs", default="/etc/login.defs", help=argparse.SUPPRESS)
    p.add_argument("--passwd-file", help="read this passwd(5)-format file instead of the password database")
    p.add_argument("--overwrite", action="store_true", help="also replace fields changed since the last import")


__all__ = [
    "CHANNEL",
    "FILE_CAP",
    "PasswdEntry",
    "SystemUser",
    "SystemUsersService",
    "UnsafeFile",
    "apply",
    "clean",
    "read_passwd_file",
    "read_user_file",
    "register",
    "scan",
    "scan_user",
    "uid_range",
]
