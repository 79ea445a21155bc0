"""
The C{sshfinger} tool's commands that look after a deployment rather than accounts: backup, restore, doctor,
passwords and the nodes of a shared store.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from typing import Any, TextIO

from sshfinger.cli.common import CommandError, actor, maintenance, offline_store
from sshfinger.model.account import (
    check_password_strength,
    normalize_login,
)
from sshfinger.ssh.passwd import hash_password, set_password
from sshfinger.store.registry import open_backend, redact_spec


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    """
    Copy a live store consistently (created 0600).
    """
    if os.path.exists(args.file):
        raise CommandError(f"{args.file} exists already; choose a new file")
    maintenance(args.store, "backup").backup(args.file)
    out.write(f"backed up {redact_spec(args.store)} to {args.file}\n")
    return 0


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    """
    Replace a store with a checked backup; refused while any process (a running server) has the store open.
    """
    maintenance(args.store, "restore").restore(args.file)
    with offline_store(args.store) as store:
        count = len(store)
    out.write(f"restored {count} accounts from {args.file} into {redact_spec(args.store)}\n")
    return 0


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    """
    Check a deployment; print the host key fingerprints.
    """
    from sshfinger.cli.doctor import doctor

    return doctor(args.store, args.keys, args.passwd or [], args.finger, args.ssh, out)


def cmd_passwd(args: argparse.Namespace, out: TextIO) -> int:
    """
    Write a bcrypt entry for a login into a passwd file (C{--auth file:PATH}).
    """
    login = normalize_login(args.login)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise CommandError("no terminal to read the password from: give it on standard input with --password-stdin")
    else:
        password = getpass.getpass(f"New password for {login}: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the passwords differ")
    try:
        check_password_strength(password, args.min_password_length)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if getattr(args, "store", None):
        return store_password(args.store, login, password, args.rounds, out)
    set_password(args.file, login, password, args.rounds)
    out.write(f"{args.file}: password set for {login}\n")
    return 0


def store_password(spec: str, login: str, password: str, rounds: int, out: TextIO) -> int:
    """
    Write a login's bcrypt hash into a store that keeps them (C{--auth store}): every node sees it.
    """
    from sshfinger.ssh.storeauth import keeps_passwords

    with offline_store(spec) as store:
        if not keeps_passwords(store.backend):
            raise CommandError(f"the store {store.description} cannot keep passwords; use --file (--auth file:PATH)")
        if store.peek(login) is None:
            raise CommandError(f"no such user: {login}")
        store.backend.set_password_hash(login, hash_password(password, rounds), actor(), time.time())  # type: ignore[attr-defined]
        out.write(f"{store.description}: password set for {login}\n")
    return 0


def cmd_nodes(args: argparse.Namespace, out: TextIO) -> int:
    """
    List the nodes serving a shared (PostgreSQL) store, with warnings; exit status 1 if there are any.
    """
    backend: Any = open_backend(args.store)
    if not callable(getattr(backend, "node_heartbeat", None)):
        raise CommandError("nodes: only a shared store (--store postgresql://...) has nodes")
    from sshfinger.store.postgresql.nodes import format_nodes, list_nodes, node_warnings

    connection = backend.connect()
    try:
        if backend.schema_version(connection) is None:
            raise CommandError(f"{backend.description} is empty: no node has served it yet")
        nodes = list_nodes(connection)
    finally:
        connection.close()
    now = time.time()
    for line in format_nodes(nodes, now) or ["no nodes registered"]:
        out.write(line + "\n")
    warnings = node_warnings(nodes, now)
    for warning in warnings:
        out.write(f"warning: {warning}\n")
    return 1 if warnings else 0


__all__ = ["cmd_backup", "cmd_doctor", "cmd_nodes", "cmd_passwd", "cmd_restore", "store_password"]
