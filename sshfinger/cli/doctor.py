"""
C{sshfinger doctor}: check a deployment before (or while) it runs, and print what an admin publishes.

Each check prints one line, C{ok}, C{warn} or C{FAIL}; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from typing import TextIO

from sshfinger.cli.common import wait
from sshfinger.model.errors import StoreError
from sshfinger.ssh.checkers import plaintext_warnings
from sshfinger.ssh.hostkeys import HostKeyError, describe, existing_host_keys
from sshfinger.ssh.passwd import parse
from sshfinger.store.interfaces import maintenance_of
from sshfinger.store.limits import CHANGES_KEEP, change_size
from sshfinger.store.registry import parse_spec, redact_spec
from sshfinger.store.service import open_offline, readable_by_others, readable_files

#: The window over which doctor measures the audit trail's growth.
GROWTH_WINDOW = 24 * 3600


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


def size_text(size: int) -> str:
    """
    A byte count for people: C{"812 B"}, C{"3.4 kB"}, C{"1.2 MB"}.
    """
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def check_store(spec: str, report: Report, now: float | None = None) -> None:
    """
    The store: opens (upgrading if needed), passes its backend's integrity check, is not readable by others;
    report its size and how much the audit trail grew over the last day.
    """
    scheme, target = parse_spec(spec)
    shown = redact_spec(spec)
    if scheme == "sqlite" and not os.path.exists(target):
        report.warn(f"store {shown}: does not exist yet (created at first start; 'sshfinger init' adds demo data)")
        return
    try:
        store = open_offline(spec)
    except (StoreError, ValueError) as e:
        report.fail(f"store {shown}: {e}")
        return
    try:
        maintenance = maintenance_of(store.backend)
        count = len(store)
        recent = wait(store.recent_changes(CHANGES_KEEP))
        for name, mode in readable_files(store):
            report.warn(f"store file {name}: readable by others (mode {mode:o}); use 600")
        if maintenance is None:
            report.warn(f"store {shown}: its backend has no integrity check, backup or size; {count} accounts")
            return
        problems = maintenance.check()
        if problems:
            report.fail(f"store {shown}: integrity check: {problems[0]}")
            return
        size = maintenance.size()
        extra = getattr(store.backend, "doctor_findings", None)  # a shared store's node registry
        findings = extra() if extra is not None else []
    except StoreError as e:
        report.fail(f"store {shown}: {e}")
        return
    finally:
        store.close()
    since = (time.time() if now is None else now) - GROWTH_WINDOW
    day = [change for change in recent if change.at >= since]
    report.ok(
        f"store {shown}: integrity ok, {count} accounts, {size_text(size)}; audit trail {len(recent)} entries "
        f"({size_text(sum(map(change_size, recent)))}), grew {len(day)} entries "
        f"({size_text(sum(map(change_size, day)))}) in the last 24 h"
    )
    for level, text in findings:
        getattr(report, level)(text)


def check_secret_files(paths: Iterable[str], report: Report) -> None:
    """
    Warn about each file that holds secrets (passwd files, private host keys) and that others may read.
    """
    for path in paths:
        mode = readable_by_others(path)
        if mode is not None:
            report.warn(f"{path}: readable by others (mode {mode:o}); it holds secrets: chmod 600 it")


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
    if os.path.isdir(keys):
        private = [os.path.join(keys, name) for name in sorted(os.listdir(keys)) if not name.endswith(".pub")]
        check_secret_files([path for path in private if os.path.isfile(path)], report)
    check_passwd(passwd, report)
    check_store(store, report)
    check_port("finger", finger, report)
    check_port("ssh", ssh, report)
    return 1 if report.failed else 0
