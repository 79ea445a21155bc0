"""
The SSH-enabled server while it does other work, and how live an edit is (sections 3 and 5 of C{run.py}).

No stalls: finger p99 at 16 clients idle, while 10 password logins (bcrypt cost 12, in the server's thread pool)
run at once, and while streams of edits over SSH sessions are committed (fsync each, in the store's writer
thread).  Live edits: from an SSH exec C{set} returning, or the offline C{sshfinger set} exiting, to a finger
query showing the new status.  An exec C{set} is acknowledged only after the commit and the in-memory update, so
the first query after it already shows the change; the offline tool writes the SQLite file from another
process, which the server sees at its next poll (every 0.5 s).

The edits change admin's status; the finger load asks for alice, whose answer never changes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import (
    HOST,
    KEY_ONLY,
    SSH_COMMON,
    ClientRun,
    Login,
    cpu_delta,
    finger_run,
    key_login,
    password_login,
    pool,
    process_cpu,
    public,
    timed_batch,
)  # fmt: skip
from servers import Servers
from table import Table, Target, finger_row, login_row, ratio_row

CONCURRENCY = 16
#: Finger p99 while the server is busy with something else, against idle.
STALL_TARGET = Target("p99", "<=", 1.5, "x")
EXEC_TARGET = Target("p50", "<", 1, "ms")
CLI_TARGET = Target("max", "<", 1000, "ms", "1 s")
#: Seconds of each idle finger window around the busy ones (half with C{--quick}).
IDLE_SECONDS = 6.0


def query(port: int, login: str) -> bytes:
    """
    One finger query for C{login}; the whole answer.
    """
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(login.encode() + b"\r\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def until_seen(port: int, text: str, limit: float = 5.0) -> Login:
    """
    Query admin until C{text} shows (at most C{limit} seconds); return the seconds it took as a L{Login}.
    """
    started = time.perf_counter()
    while text.encode() not in query(port, "admin"):
        if time.perf_counter() - started > limit:
            return limit, False, f"{text!r} not shown within {limit:.0f} s"
        time.sleep(0.001)
    return time.perf_counter() - started, True, ""


def edit_delay(edit: ClientRun | list[str], port: int, text: str) -> Login:
    """
    Make one edit that sets admin's status to C{text}; return how long after it returned finger showed it.

    @param edit: the SSH exec (a L{ClientRun}) or the offline tool's command line.
    """
    if isinstance(edit, ClientRun):
        _, ok, output = edit()
    else:
        done = subprocess.run(edit, capture_output=True, text=True, timeout=60)
        ok, output = done.returncode == 0, done.stderr.strip()
    return until_seen(port, text) if ok else (0.0, False, f"the edit failed: {output[:80]}")


def edit_session(servers: Servers, ssh: int, first: int, count: int) -> bool:
    """
    One SSH session without a pty (like a pasted script) that sends C{count} lines C{set admin status write-N},
    N from C{first}, then C{quit}; whether it succeeded.  Kept under the server's 64 KiB limit on unread input.
    """
    lines = "".join(f"set admin status write-{n}\n" for n in range(first, first + count)) + "quit\n"
    done = subprocess.run(["ssh", *SSH_COMMON, *KEY_ONLY, "-p", str(ssh), "-i", str(servers.key), "-T",
                           f"admin@{HOST}"], input=lines.encode(), capture_output=True, timeout=60)  # fmt: skip
    return done.returncode == 0


def finger_while(finger: int, work: Callable[[], object]) -> tuple[dict[str, Any], float]:
    """
    Run C{work} in a thread and finger queries for as long as it runs (at most 60 s); return the pooled finger
    result (without CPU per query: the server did other work too) and the wall seconds of the work.
    """
    done = threading.Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result = pool([finger_run(finger, CONCURRENCY, 10**7, 60, until=done.is_set)])
    thread.join(90)
    result["cpu_ms_per_op"] = None
    return result, time.perf_counter() - started


def measure_stalls(
    servers: Servers, table: Table, finger: int, ssh: int, quick: bool, results: dict[str, Any]
) -> None:
    """
    Section 3 (server C{sshfinger-ssh}): finger idle, during 10 concurrent bcrypt logins, during a stream of
    committed edits; the p99 ratios against their target.

    Idle windows of L{IDLE_SECONDS} come before, between and after the two busy windows, and each busy window is
    compared with the two idle windows around it, pooled: both sides of a ratio then sample the same stretch of
    the machine (whose speed drifts by a factor of two over tens of seconds on a shared VM), and both p99s come
    from tens of thousands of queries rather than one side from a few thousand.
    """
    pid = servers.pid("sshfinger-ssh")
    table.section(f"3. no stalls: finger c={CONCURRENCY} on the SSH-enabled server, idle vs busy")
    single, _, cpu, note = timed_batch(pid, lambda: [password_login(ssh)() for _ in range(1 if quick else 3)])
    results["ssh_password_sequential"] = login_row(
        table, f"password login+exec (bcrypt 12), one at a time x{len(single)}", single, note=note, cpu=cpu
    )
    finger_run(finger, CONCURRENCY, 2000, 10)  # warm up
    idle_seconds = IDLE_SECONDS / 2 if quick else IDLE_SECONDS

    def idle_window() -> dict[str, Any]:
        return finger_run(finger, CONCURRENCY, 10**7, idle_seconds, pid)

    idle = [idle_window()]
    logins: list[Login] = []

    def run_logins() -> None:
        with ThreadPoolExecutor(10) as executor:
            logins.extend(executor.map(lambda _: password_login(ssh)(), range(10)))

    cpu_before = process_cpu(pid)
    bcrypt, logins_wall = finger_while(finger, run_logins)
    cpu = cpu_delta(cpu_before, process_cpu(pid))
    idle.append(idle_window())

    sessions, per_session = (2, 500) if quick else (3, 1000)
    count = sessions * per_session
    succeeded: list[bool] = []
    edits, edits_wall = finger_while(finger, lambda: succeeded.extend(
        edit_session(servers, ssh, k * per_session, per_session) for k in range(sessions)))  # fmt: skip
    idle.append(idle_window())

    around = f"{idle_seconds:.0f} s right before and {idle_seconds:.0f} s right after, pooled"
    for kind, busy, name, reference in [
        ("bcrypt", bcrypt, "10 bcrypt logins", pool(idle[:2])),
        ("edits", edits, f"{count} edits", pool(idle[1:])),
    ]:
        idle_row = finger_row(table, f"finger idle around the {kind}", reference, around)
        row = finger_row(table, f"finger during {name}", busy, f"{busy['seconds']:.1f} s window")
        ratio_row(table, f"ratio during {kind}/idle", row, idle_row, "ratios (x)", STALL_TARGET)
        results[f"finger_idle_{kind}"] = public(reference)
    note = "rate = logins/s over the window"
    if cpu is not None:
        note += f"; server CPU {cpu:.2f} s in it, finger included"
    results["password_concurrent"] = login_row(table, "the 10 password logins (wall each)", logins, logins_wall, note)
    last = f"write-{count - 1}".encode() in query(finger, "admin")
    table.add(f"the {count} edits ({sessions} SSH session{'s' if sessions > 1 else ''})", n=count,
              rate=count / edits_wall, errors=succeeded.count(False) + (not last),
              note="rate = edits/s, logins included" + ("" if last else "; the last edit does not show"))  # fmt: skip
    results["finger_bcrypt"], results["finger_edits"] = public(bcrypt), public(edits)


def measure_live(
    servers: Servers, table: Table, finger: int, ssh: int | None, quick: bool, results: dict[str, Any]
) -> None:
    """
    Section 5: the delay from an edit returning to finger showing it, by SSH exec (if C{ssh}) and by the offline
    tool, against their targets.
    """
    table.section("5. live edits: from the edit returning to the first finger query that shows it")
    if ssh is not None:
        rounds = 10 if quick else 20
        delays = [edit_delay(key_login(ssh, servers.key, ["set", "admin", "status", f"exec-{n}"]), finger,
                              f"exec-{n}") for n in range(rounds)]  # fmt: skip
        results["live_exec"] = login_row(table, f"ssh exec set -> finger, x{rounds}", delays,
                                         note="one finger round trip", target=EXEC_TARGET)  # fmt: skip
    rounds = 3 if quick else 6
    delays = [edit_delay([servers.tool, "set", "admin", "status", f"cli-{n}", "--store", str(servers.store)],
                          finger, f"cli-{n}") for n in range(rounds)]  # fmt: skip
    results["live_cli"] = login_row(table, f"offline sshfinger set -> finger, x{rounds}", delays,
                                    note="another process; the server polls every 0.5 s", target=CLI_TARGET)
