"""
C{sshfinger doctor}: check a deployment before (or while) it runs, and print what an admin publishes.

Each check prints one line, C{ok}, C{warn} or C{FAIL}; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import TextIO

from sshfinger.model.errors import StoreError
from sshfinger.ssh.checkers import plaintext_warnings
from sshfinger.ssh.hostkeys import HostKeyError, describe, existing_host_keys
from sshfinger.ssh.passwd import parse
from sshfinger.store.sqlite import SQLiteBackend


class Report:
    """
    Collects check results and prints them as they come.

    @ivar failed: whether any check failed.
    """

    def __init__(self, out: TextIO) -> None:
        """
        @param out: where the lines go.
        """
        self.out = out
        self.failed = False

    def ok(self, text: str) -> None:
        """
        A passed check.
        """
        self.out.write(f"ok    {text}\n")

    def warn(self, text: str) -> None:
        """
        Something to fix that does not stop the server.
        """
        self.out.write(f"warn  {text}\n")

    def fail(self, text: str) -> None:
        """
        Something that stops the server or breaks logins.
        """
        self.failed = True
        self.out.write(f"FAIL  {text}\n")


def check_keys(directory: str, report: Report) -> None:
    """
    Host keys: present, private files 0600 and parseable; print their fingerprints for publishing.
    """
    try:
        keys = existing_host_keys(directory)
    except HostKeyError as e:
        report.fail(f"host keys: {e}")
        return
    if not keys:
        report.warn(f"host keys: none in {directory} yet (generated at first start)")
    for pub, key in keys:
        report.ok(f"host key {describe(key.public(), pub)}")


def check_passwd(paths: Iterable[str], report: Report) -> None:
    """
    passwd files: readable, entries counted, plaintext entries warned.
    """
    for path in paths:
        try:
            with open(path, "rb") as f:
                entries = parse(f.read())
        except OSError as e:
            report.fail(f"passwd {path}: {e.strerror}")
            continue
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o007:
            report.warn(f"passwd {path}: readable by others (mode {mode:o}); use 640")
        warnings = plaintext_warnings(path)
        for warning in warnings:
            report.warn(warning)
        report.ok(f"passwd {path}: {len(entries)} entries, {len(entries) - len(warnings)} bcrypt")


def check_store(path: str, report: Report) -> None:
    """
    The SQLite store: opens (upgrading if needed), passes C{PRAGMA integrity_check}.
    """
    if path.startswith(("postgresql://", "postgres://")):  # a shared store: its own checks
        from sshfinger.store.postgresql.nodes import doctor_findings

        for level, text in doctor_findings(path):
            getattr(report, level)(text)
        return
    if not os.path.exists(path):
        report.warn(f"store {path}: does not exist yet (created at first start; 'sshfinger init' adds demo data)")
        return
    backend = SQLiteBackend(path)
    try:
        accounts = backend.open()
        result = backend.integrity_check()
    except StoreError as e:
        report.fail(f"store {path}: {e}")
        return
    finally:
        backend.close()
    if result != "ok":
        report.fail(f"store {path}: integrity check: {result.splitlines()[0]}")
    else:
        report.ok(f"store {path}: integrity ok, {len(accounts)} accounts")


def check_port(name: str, endpoint: str, report: Report) -> None:
    """
    A C{tcp:PORT[:interface=ADDR]} endpoint is free to bind (others are not checked).
    """
    parts = endpoint.split(":")
    if parts[0] != "tcp" or len(parts) < 2 or not parts[1].isdigit():
        report.ok(f"{name} {endpoint}: not a TCP port, not checked")
        return
    interface = next((part.split("=", 1)[1] for part in parts[2:] if part.startswith("interface=")), "")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((interface, int(parts[1])))
        except OSError as e:
            report.warn(f"{name} {endpoint}: cannot bind now ({e.strerror}); in use by a running server?")
            return
    report.ok(f"{name} {endpoint}: free")


def doctor(store: str, keys: str, passwd: Iterable[str], finger: str, ssh: str, out: TextIO) -> int:
    """
    Run every check; return the exit status.
    """
    report = Report(out)
    check_keys(keys, report)
    check_passwd(passwd, report)
    check_store(store, report)
    check_port("finger", finger, report)
    check_port("ssh", ssh, report)
    return 1 if report.failed else 0
