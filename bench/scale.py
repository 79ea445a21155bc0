"""
How the store scales: start-up time, memory per account, the in-memory lookup (C{peek}), a finger answer for
an account not yet rendered, and the empty-query listing, at 1 000, 100 000 and 1 000 000 accounts.

  python bench/scale.py [--sizes 1000,100000,1000000]

Each size runs in a fresh child process (so its memory is measured alone): the store file is filled in one
SQLite transaction (bench data, not through the API: a million acknowledged commits would take hours), then the
child opens it as the server does and measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fill(path: str, count: int) -> None:
    """
    Create a store at C{path} and insert C{count} accounts directly.
    """
    from sshfinger.store.sqlite import SQLiteBackend

    backend = SQLiteBackend(path)
    backend.open()
    backend.close()
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO accounts (login, real_name, status, plan, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (f"user{n:07d}", f"User Number {n}", f"Status line of user {n}", "", 1_795_000_000.0 + n, "bench")
                for n in range(count)
            ),
        )
    connection.close()


def rss_kb() -> int:
    """
    This process's resident memory in KiB.
    """
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def measure(path: str, count: int) -> dict[str, float]:
    """
    Open the store as the server does; return start-up seconds, bytes per account, lookup and listing times.
    """
    from twisted.internet.task import Clock

    from sshfinger.finger import FingerService
    from sshfinger.store.cached import CachedStore
    from sshfinger.store.sqlite import SQLiteBackend

    before = rss_kb()
    started = time.perf_counter()
    store = CachedStore(SQLiteBackend(path), time.time)
    store.open()
    startup = time.perf_counter() - started
    per_account = (rss_kb() - before) * 1024 / count
    service = FingerService(store, Clock())
    rng = random.Random(79)
    logins = [f"user{n:07d}" for n in rng.sample(range(count), min(count, 1000))]  # distinct: never cached
    started = time.perf_counter()
    for _ in range(20):
        for login in logins:
            store.peek(login)
    peek_us = (time.perf_counter() - started) / (20 * len(logins)) * 1e6
    started = time.perf_counter()
    for login in logins:
        service.user(login, False)
    answer_us = (time.perf_counter() - started) / len(logins) * 1e6
    service.listing()  # builds the cached login order once
    started = time.perf_counter()
    for _ in range(20):
        service.listing()
    listing_ms = (time.perf_counter() - started) / 20 * 1000
    store.close()
    return {"accounts": count, "startup_s": startup, "bytes_per_account": per_account,
            "peek_us": peek_us, "answer_us": answer_us, "listing_ms": listing_ms}  # fmt: skip


def child(count: int) -> None:
    """
    Fill and measure one size; print the result as JSON.
    """
    with tempfile.TemporaryDirectory(prefix="sshfinger-scale-") as directory:
        path = os.path.join(directory, "scale.db")
        fill(path, count)
        print(json.dumps(measure(path, count)))


def main() -> None:
    """
    Run each size in a child process and print a table.
    """
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"{'accounts':>10} {'start-up s':>11} {'bytes/account':>14} {'peek us':>8} {'answer us':>10} {'listing ms':>11}")
    for size in (int(text) for text in args.sizes.split(",")):
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(size)], capture_output=True, text=True, check=True, timeout=900
        ).stdout
        row = json.loads(output)
        print(f"{row['accounts']:>10} {row['startup_s']:>11.2f} {row['bytes_per_account']:>14.0f} "
              f"{row['peek_us']:>8.2f} {row['answer_us']:>10.1f} {row['listing_ms']:>11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
