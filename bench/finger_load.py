"""
A finger load generator on raw non-blocking sockets and C{select.epoll} (not Twisted, not asyncio streams), so
that it measures the server rather than a client framework, and stays as cheap as Python allows: it outruns
one core of the tutorial server, though not of sshfinger, which answers as it accepts (see bench/README.md).

It works in waves: C{concurrency} connections are opened at once, each sends one query as soon as it is
connected and reads until the server closes; when the whole wave is done (or has timed out) the next wave
starts, until C{total} queries have been sent or C{seconds} have passed.  Latency is measured per connection,
from just before C{connect()} to the end-of-file.  An answer that lacks C{expect} counts as an error (e.g. "too
many connections").

Library::

    from finger_load import run_load
    result = run_load("127.0.0.1", 1079, concurrency=16, total=5000, query=b"alice\\r\\n")

CLI::

    python bench/finger_load.py PORT [--host 127.0.0.1] [--concurrency 16] [--total 5000] [--seconds 30]
                                     [--query alice] [--expect TEXT] [--json]
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

#: Seconds one connection may take before it counts as a timeout error.
CONNECTION_TIMEOUT = 10.0

#: The error kinds counted separately in a result's C{error_kinds}.
ERROR_KINDS = ("refused", "reset", "timeout", "wrong-answer", "other")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """
    The nearest-rank percentile of C{sorted_values} (already sorted): the smallest value with at least
    C{fraction} of the values at or below it.  NaN for an empty list.
    """
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-fraction * len(sorted_values) // 1))  # ceil, at least 1
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


#: The epoll events that end a connection's sending phase early: an error, or the peer gone.
_BROKEN = select.EPOLLERR | select.EPOLLHUP


def _wave(
    host: str, port: int, size: int, query: bytes | Callable[[], bytes], expect: bytes | None, timeout: float,
    latencies: list[float], errors: dict[str, int], samples: list[bytes],
) -> None:  # fmt: skip
    """
    Run one wave of C{size} simultaneous one-query connections; append to C{latencies} and C{errors}.

    Written for a small cost per connection, so that the client is not what limits the rate: C{select.epoll}
    directly (no C{selectors} keys), sockets created non-blocking, registered once for reading when the query
    went out with the C{connect}, and read again at once after data (the answer and the FIN usually come
    together), so that a connection costs one C{epoll} event.
    """
    poller = select.epoll(size)
    address = (host, port)
    queries = [query() for _ in range(size)] if callable(query) else [query] * size
    # fd -> [socket, start time, answer chunks, bytes of the query sent, the query]
    conns: dict[int, list[Any]] = {}

    def finish(fd: int, error: str | None) -> None:
        sock, started, chunks, _, _ = conns.pop(fd)
        sock.close()  # (closing the last reference takes it out of the epoll set)
        if error is None:
            if expect is not None and expect not in b"".join(chunks):
                error = "wrong-answer"
                if len(samples) < 3:
                    samples.append(b"".join(chunks)[:120])
            else:
                latencies.append(time.perf_counter() - started)
                return
        errors[error] += 1

    def send_rest(fd: int, conn: list[Any]) -> bool:
        """
        Send what is left of the query; return whether the connection is still good.
        """
        try:
            conn[3] += conn[0].send(conn[4][conn[3] :])
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionError as e:
            finish(fd, "refused" if isinstance(e, ConnectionRefusedError) else "reset")
            return False
        return True

    try:
        for query_bytes in queries:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            started = time.perf_counter()
            code = sock.connect_ex(address)
            fd = sock.fileno()
            conn = conns[fd] = [sock, started, [], 0, query_bytes]
            if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
                finish(fd, "refused" if code == errno.ECONNREFUSED else "other")
                continue
            # Like a real client (finger(1) connects, then writes), send the query as soon as the connection is
            # up, which on loopback it nearly always is when connect() returns; not after the rest of the wave
            # has connected, which would count the client's own delay as the server's latency.
            if send_rest(fd, conn):
                poller.register(fd, select.EPOLLIN if conn[3] >= len(query_bytes) else select.EPOLLOUT)
        deadline = time.perf_counter() + timeout
        while conns:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                for fd in list(conns):
                    finish(fd, "timeout")
                break
            for fd, events in poller.poll(remaining):
                conn = conns.get(fd)
                if conn is None:
                    continue
                sock = conn[0]
                if conn[3] < len(conn[4]):  # still connecting or sending
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if events & _BROKEN else 0
                    if code:
                        finish(fd, "refused" if code == errno.ECONNREFUSED else "other")
                    elif send_rest(fd, conn) and conn[3] >= len(conn[4]):
                        poller.modify(fd, select.EPOLLIN)
                    continue
                chunks = conn[2]
                while True:
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionError:
                        finish(fd, "reset")
                        break
                    if not data:
                        finish(fd, None)
                        break
                    chunks.append(data)
    finally:
        for conn in conns.values():
            conn[0].close()
        poller.close()


def run_load(
    host: str,
    port: int,
    concurrency: int,
    total: int,
    query: bytes | Callable[[], bytes] = b"alice\r\n",
    *,
    seconds: float = 60.0,
    expect: bytes | None = None,
    until: Callable[[], bool] | None = None,
    timeout: float = CONNECTION_TIMEOUT,
) -> dict[str, Any]:
    """
    Send C{total} one-query connections to C{host:port} in waves of C{concurrency}, and measure.

    @param query: the bytes sent on each connection, or a function called for each connection's bytes.
    @param seconds: stop starting waves after this long, even if C{total} is not reached.
    @param expect: bytes every good answer contains; L{None} accepts any answer, even an empty one.
    @param until: if given, also stop starting waves once it returns true (checked between waves).
    @param timeout: seconds one connection may take before it counts as an error.
    @return: C{queries} (good answers), C{errors}, C{error_kinds} (dict), C{wrong_answers} (up to 3 samples),
        C{seconds}, C{qps} (good answers per second), C{p50_ms}, C{p90_ms}, C{p99_ms}, C{max_ms}, C{waves},
        C{latencies} (sorted, in seconds).
    """
    if concurrency < 1 or total < 1:
        raise ValueError("concurrency and total must be at least 1")
    latencies: list[float] = []
    errors = dict.fromkeys(ERROR_KINDS, 0)
    samples: list[bytes] = []
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    sent = waves = 0
    while sent < total and time.monotonic() < deadline and not (until is not None and until()):
        size = min(concurrency, total - sent)
        _wave(host, port, size, query, expect, timeout, latencies, errors, samples)
        sent += size
        waves += 1
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "queries": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": {kind: count for kind, count in errors.items() if count},
        "wrong_answers": [sample.decode("utf-8", "replace") for sample in samples],
        "seconds": elapsed,
        "waves": waves,
        "qps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "latencies": latencies,
    }


def main(argv: list[str] | None = None) -> int:
    """
    Command line entry point: print queries/s, p50, p99, max and errors (or the whole result as JSON).
    """
    parser = argparse.ArgumentParser(description="Finger load generator (raw sockets, waves of connections).")
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--total", "-n", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0, help="stop after this long (default 30)")
    parser.add_argument("--query", default="alice", help="query text; CRLF is appended (default alice)")
    parser.add_argument("--expect", help="text every good answer must contain (default: accept any)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run_load(
        args.host, args.port, args.concurrency, args.total, args.query.encode("utf-8") + b"\r\n",
        seconds=args.seconds, expect=args.expect.encode("utf-8") if args.expect else None,
    )  # fmt: skip
    if args.json:
        result.pop("latencies")
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['queries']} queries in {result['seconds']:.2f} s: {result['qps']:.0f} q/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms, "
            f"errors {result['errors']} {result['error_kinds'] or ''}"
        )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
