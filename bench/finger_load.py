"""
A finger load generator (asyncio, not Twisted, so it measures the server rather than the client framework).

Opens C{concurrency} connections at a time, each sending one query and reading until the server closes, until
C{total} queries are done; reports queries/s and latency percentiles.

Run: python finger_load.py PORT [--concurrency 16] [--total 5000] [--query alice]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


def percentile(sorted_values: list[float], fraction: float) -> float:
    """
    The value below which C{fraction} of C{sorted_values} lie (nearest rank).
    """
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class WrongAnswer(Exception):
    """
    The server answered, but not with what was expected (a refusal, an error line).
    """


async def _one(host: str, port: int, query: bytes, expect: bytes, timeout: float) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.write(query)
    answer = await asyncio.wait_for(reader.read(-1), timeout)
    writer.close()
    if expect not in answer:
        raise WrongAnswer(answer[:80])
    return time.perf_counter() - started


async def _run(
    host: str, port: int, concurrency: int, total: int, query: bytes, expect: bytes, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    remaining = total
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            try:
                latencies.append(await _one(host, port, query, expect, 10.0))
            except (OSError, asyncio.TimeoutError, WrongAnswer):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "queries": len(latencies),
        "errors": errors,
        "qps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
    }


def run_load(
    host: str,
    port: int,
    concurrency: int,
    total: int,
    query: bytes = b"alice\r\n",
    seconds: float = 60.0,
    expect: bytes = b"Down the rabbit hole",
) -> dict[str, float]:
    """
    Drive the server and return C{queries}, C{errors}, C{qps}, C{p50_ms}, C{p99_ms}, C{max_ms}.

    An answer without C{expect} in it (a refusal) counts as an error, not as a query.
    """
    return asyncio.run(_run(host, port, concurrency, total, query, expect, seconds))


def main() -> None:
    """
    Command line entry point: print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--total", type=int, default=5000)
    parser.add_argument("--query", default="alice")
    args = parser.parse_args()
    result = run_load(args.host, args.port, args.concurrency, args.total, args.query.encode() + b"\r\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
