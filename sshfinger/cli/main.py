"""
C{sshfinger}: the offline tool for the user store and the passwd file.

Every command opens the store, commits synchronously and exits: a running server sees the change within a second
(it follows the store's change feed).  Errors are one line on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from sshfinger import __version__
from sshfinger.cli import config_check, system_users
from sshfinger.cli.common import CommandError, actor, offline_store, wait
from sshfinger.cli.maintenance import cmd_backup, cmd_doctor, cmd_nodes, cmd_passwd, cmd_restore
from sshfinger.finger.render import sanitize
from sshfinger.model.account import (
    EDITABLE_FIELDS,
    MIN_PASSWORD_LENGTH,
    Account,
    normalize_login,
)
from sshfinger.model.audit import format_change
from sshfinger.model.errors import NoSuchAccount, StoreError
from sshfinger.ssh.passwd import DEFAULT_ROUNDS
from sshfinger.store.cached import CachedStore

#: What C{sshfinger --help} says the tool is (the module docstring's first line is markup, not help text).
DESCRIPTION = (
    "The offline tool for sshfinger's user store and passwd file. Each command commits at once; a running server "
    "shows the change within a second."
)

DEMO_ACCOUNTS: Sequence[dict[str, Any]] = (
    {
        "login": "alice",
        "real_name": "Alice Liddell",
        "status": "Down the rabbit hole",
        "plan": "Follow the White Rabbit.\nAttend the Mad Tea-Party at six.",
        "office": "Wonderland 1865",
    },
    {"login": "admin", "real_name": "Administrator", "status": "Keeping the lights on", "role": "admin"},
)

EXPORT_FIELDS = ("login",) + EDITABLE_FIELDS


def upsert(store: CachedStore, record: dict[str, Any], channel: str) -> str:
    """
    Create or update one account from a record (C{login} plus fields); return C{"created"}, C{"updated"} or
    C{"unchanged"}.
    """
    record = dict(record)
    login = normalize_login(str(record.pop("login", "")))
    fields = {name: value for name, value in record.items() if name not in ("updated_at", "updated_by")}
    existing = store.peek(login)
    if existing is None:
        wait(store.create(login, actor(channel), fields))
        return "created"
    changed = {name: value for name, value in fields.items() if _differs(existing, name, value)}
    if not changed:
        return "unchanged"
    wait(store.update(login, changed, actor(channel)))
    return "updated"


def _differs(account: Account, name: str, value: Any) -> bool:
    current = getattr(account, name, None)
    if name == "keys":
        return tuple(current or ()) != tuple(value)
    return bool(current != value)


def parse_records(text: str, fmt: str) -> list[dict[str, Any]]:
    """
    Parse an import file: C{json} (a list of objects with C{login} and fields, as L{export} writes) or C{text}
    (the Twisted finger tutorial's C{login:status} lines; blank lines and C{#} comments skipped).
    """
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise CommandError(f"not valid JSON: {e}") from None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise CommandError("JSON import takes a list of objects, each with a 'login'")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        login, sep, status = line.partition(":")
        if not sep:
            raise CommandError(f"line {number}: expected login:status")
        records.append({"login": login.strip(), "status": status.strip()})
    return records


def export_records(accounts: Iterable[Account], fmt: str) -> str:
    """
    Render accounts as JSON (every field) or as C{login:status} lines.
    """
    accounts = list(accounts)
    if fmt == "text":
        return "".join(f"{account.login}:{account.status}\n" for account in accounts)
    data = [
        {name: list(value) if name == "keys" else value for name in EXPORT_FIELDS for value in [getattr(account, name)]}
        for account in accounts
    ]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _guess_format(path: str, given: str | None) -> str:
    if given:
        return given
    return "json" if path.endswith(".json") else "text"


# Commands: each takes the parsed arguments and the output stream, returns the exit status.


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    """
    Create a store (if needed) with the demo accounts that are missing (none with C{--empty}).
    """
    with offline_store(args.store) as store:
        for record in () if args.empty else DEMO_ACCOUNTS:
            if store.peek(record["login"]) is None:
                upsert(store, record, "cli")
                out.write(f"created {record['login']}\n")
        out.write(f"store {store.description} holds {len(store)} accounts\n")
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    """
    Import accounts from JSON or C{login:status} text; existing accounts are updated.
    """
    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CommandError(f"cannot read {args.file}: {getattr(e, 'strerror', None) or e}") from None
    records = parse_records(text, _guess_format(args.file, args.format))
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with offline_store(args.store) as store:
        for record in records:
            counts[upsert(store, record, "import")] += 1
    out.write(", ".join(f"{count} {what}" for what, count in counts.items()) + "\n")
    return 0


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    """
    Export every account (hidden ones included).
    """
    with offline_store(args.store) as store:
        accounts: list[Account] = wait(store.list(include_hidden=True))
        text = export_records(accounts, args.format)
    if args.output in (None, "-"):
        out.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


def cmd_set(args: argparse.Namespace, out: TextIO) -> int:
    """
    Set one field of one account.
    """
    with offline_store(args.store) as store:
        account = wait(store.update(args.login, {args.field: args.value}, actor()))
    out.write(f"{account.login}: {args.field} set\n")
    return 0


def cmd_add(args: argparse.Namespace, out: TextIO) -> int:
    """
    Create an account.
    """
    with offline_store(args.store) as store:
        fields: dict[str, Any] = {"real_name": " ".join(args.name)} if args.name else {}
        if args.admin:
            fields["role"] = "admin"
        account = wait(store.create(args.login, actor(), fields))
    out.write(f"created {account.login}\n")
    return 0


def cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    """
    Delete an account.
    """
    with offline_store(args.store) as store:
        wait(store.delete(args.login, actor()))
    out.write(f"deleted {args.login.lower()}\n")
    return 0


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    """
    Print one account (or all) as JSON.
    """
    with offline_store(args.store) as store:
        if args.login:
            account = store.peek(args.login)
            if account is None:
                raise NoSuchAccount(args.login)
            accounts = [account]
        else:
            accounts = wait(store.list(include_hidden=True))
    out.write(export_records(accounts, "json"))
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    """
    Re-check the signature of an account's plan against the stored plan and the account's keys: exit 0 when it
    verifies, 1 otherwise.
    """
    from sshfinger.model.sshsig import verify_report

    with offline_store(args.store) as store:
        account = store.peek(args.login)
        if account is None:
            raise NoSuchAccount(args.login)
    ok, line = verify_report(account.login, account.plan, account.plan_signature, account.keys)
    out.write(line + "\n")
    return 0 if ok else 1


def cmd_key(args: argparse.Namespace, out: TextIO) -> int:
    """
    Add, list or delete the SSH public keys of an account.
    """
    from sshfinger.ssh.checkers import parse_authorized_key
    from sshfinger.ssh.hostkeys import fingerprint

    with offline_store(args.store) as store:
        account = store.peek(args.login)
        if account is None:
            raise NoSuchAccount(args.login)
        if args.action == "list":
            if not account.keys:
                out.write(f"{account.login} has no keys\n")
            for index, line in enumerate(account.keys, 1):
                out.write(f"{index:>2}  {fingerprint(parse_authorized_key(line)[0])}  {line.split(None, 2)[-1]}\n")
            return 0
        if args.action == "add":
            try:
                with open(args.argument, encoding="utf-8") as f:
                    lines = [line for line in f.read().splitlines() if line.strip() and not line.startswith("#")]
            except (OSError, UnicodeDecodeError) as e:
                raise CommandError(f"cannot read {args.argument}: {getattr(e, 'strerror', None) or e}") from None
            new = [parse_authorized_key(line)[1] for line in lines]
            if not new:
                raise CommandError(f"{args.argument} holds no key")
            keys = account.keys + tuple(line for line in new if line not in account.keys)
            wait(store.update(account.login, {"keys": keys}, actor()))
            out.write(f"{account.login}: {len(keys) - len(account.keys)} key(s) added\n")
            return 0
        keep = tuple(
            line
            for index, line in enumerate(account.keys, 1)
            if args.argument not in (str(index), fingerprint(parse_authorized_key(line)[0]))
        )
        if len(keep) == len(account.keys):
            raise CommandError(f"{account.login} has no key {args.argument}")
        wait(store.update(account.login, {"keys": keep}, actor()))
        out.write(f"{account.login}: key removed\n")
        return 0


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    """
    Print the newest audit entries (changes and manhole lines), oldest first.
    """
    with offline_store(args.store) as store:
        changes = wait(store.recent_changes(args.count, args.login, everything=True))
    for change in changes:
        out.write(sanitize(format_change(change)) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """
    The argument parser of the C{sshfinger} tool.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=os.environ.get("SSHFINGER_STORE", "sshfinger.db"),
        help="the store: a SQLite file path, sqlite:PATH, memory: or a postgresql:// URL (default: $SSHFINGER_STORE "
        "or sshfinger.db)",
    )
    parser = argparse.ArgumentParser(prog="sshfinger", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"sshfinger {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, function: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(function=function)
        return p

    p = command("init", cmd_init, "create the store with demo accounts (alice, admin)")
    p.add_argument("--empty", action="store_true", help="create the store with no accounts")
    p = command("import", cmd_import, "import accounts from JSON or login:status text")
    p.add_argument("file")
    p.add_argument("--format", choices=("json", "text"), help="default: json for *.json, else text")
    p = command("export", cmd_export, "export all accounts as JSON or login:status text")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p = command("set", cmd_set, "set one field: " + ", ".join(EDITABLE_FIELDS[:-1]))
    p.add_argument("login")
    p.add_argument("field")
    p.add_argument("value")
    p = command("add", cmd_add, "create an account")
    p.add_argument("login")
    p.add_argument("name", nargs="*", help="real name")
    p.add_argument("--admin", action="store_true", help="give the account the admin role")
    p = command("del", cmd_delete, "delete an account")
    p.add_argument("login")
    p = command("show", cmd_show, "print one account, or all, as JSON")
    p.add_argument("login", nargs="?")
    p = command("verify", cmd_verify, "check the signature of an account's plan (exit 1 unless it verifies)")
    p.add_argument("login")
    p = command("key", cmd_key, "manage SSH public keys: key add LOGIN FILE.pub | key list LOGIN | key del LOGIN N")
    p.add_argument("action", choices=("add", "list", "del"))
    p.add_argument("login")
    p.add_argument("argument", nargs="?", help="add: a .pub or authorized_keys file; del: number or fingerprint")
    p = command("audit", cmd_audit, "show the audit trail: who changed what, and manhole input")
    p.add_argument("count", nargs="?", type=int, default=50, help="how many entries (default 50)")
    p.add_argument("--login", help="only entries about this login")
    p = command("backup", cmd_backup, "copy a live store consistently (the copy is made 0600)")
    p.add_argument("file", help="the new backup file")
    p = command("restore", cmd_restore, "replace the store with a checked backup (refused while a server has it open)")
    p.add_argument("file", help="a file made by 'sshfinger backup'")
    p = command("doctor", cmd_doctor, "check keys, passwd files, the store and ports; print host key fingerprints")
    p.add_argument("--keys", default="keys", help="host key directory (default: keys)")
    p.add_argument("--passwd", action="append", help="a passwd file given to --auth file: (repeatable)")
    p.add_argument("--finger", default="tcp:79", help="finger endpoint to check (default: tcp:79)")
    p.add_argument("--ssh", default="tcp:2222", help="SSH endpoint to check (default: tcp:2222)")
    command("nodes", cmd_nodes, "list the nodes serving a shared PostgreSQL store, and warn about them")
    p = sub.add_parser("passwd", help="set a password in a passwd file (bcrypt)")
    p.set_defaults(function=cmd_passwd)
    p.add_argument("login")
    p.add_argument("--file", default="passwd", help="passwd file for --auth file:PATH (default: passwd)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"bcrypt cost (default {DEFAULT_ROUNDS})")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument(
        "--min-password-length",
        type=int,
        default=MIN_PASSWORD_LENGTH,
        help=f"shortest password accepted (default {MIN_PASSWORD_LENGTH})",
    )
    p.add_argument("--store", help="write the hash into this store instead (--auth store; a postgresql:// store)")
    config_check.register(sub)
    system_users.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """
    Run the tool; return the exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", None) in ("add", "del") and not args.argument:
        parser.error(f"key {args.action} needs a file or key number")
    try:
        return int(args.function(args, out))
    except (StoreError, CommandError, ValueError) as e:
        err.write(f"sshfinger: error: {e}\n")
    except OSError as e:  # a file the user named: missing directory, no permission, disk full
        where = f"{e.filename}: " if e.filename else ""
        err.write(f"sshfinger: error: {where}{e.strerror or e}\n")
    except (EOFError, KeyboardInterrupt):
        err.write("sshfinger: error: interrupted; nothing changed\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
