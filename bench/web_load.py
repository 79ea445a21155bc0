"""
Load generators for the web bench, on asyncio protocols (not Twisted): keep-alive HTTP/1.1 GETs at a fixed
concurrency, and a crowd of Server-Sent Events subscribers that note when each sees a marker.

    python web_load.py PORT PATH [-c 16] [-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from finger_load import percentile


class _Getter(asyncio.Protocol):
    """
    One keep-alive connection sending the same request again as soon as each response is complete.
    """

    def __init__(self, request: bytes, stats: dict[str, Any], until: float) -> None:
        self.request, self.stats, self.until = request, stats, until
        self.buffer = b""
        self.sent = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            status = head[9:12]
            self.buffer = self.buffer[end + 4 + length :]
            now = time.perf_counter()
            self.stats["latencies"].append(now - self.sent)
            if status != b"200":
                self.stats["errors"] += 1
            if now >= self.until:
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _http_load(port: int, path: str, concurrency: int, seconds: float, host: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"latencies": [], "errors": 0}
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
    started = time.perf_counter()
    until = started + seconds
    protocols = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(lambda: _Getter(request, stats, until), "127.0.0.1", port)
        protocols.append(protocol)
    await asyncio.gather(*(p.done for p in protocols))
    elapsed = time.perf_counter() - started
    latencies = sorted(stats["latencies"])
    return {
        "requests": len(latencies),
        "qps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": stats["errors"],
    }


def http_load(port: int, path: str, concurrency: int = 16, seconds: float = 5.0, host: str = "bench.example") -> dict[str, Any]:
    """
    GET C{path} over C{concurrency} keep-alive connections for C{seconds}; return q/s, latency percentiles and
    the count of non-200 answers.
    """
    return asyncio.run(_http_load(port, path, concurrency, seconds, host))


class _Subscriber(asyncio.Protocol):
    """
    One C{/events} stream; notes when the current marker first shows in it.
    """

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self.tail = b""
        self.seen: dict[bytes, float] = {}
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"GET /events HTTP/1.1\r\nHost: bench.example\r\nAccept: text/event-stream\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        text = self.tail + data
        if not self.opened.done() and b"retry:" in text:
            self.opened.set_result(None)
        marker = self.crowd.marker
        if marker and marker not in self.seen and marker in text:
            self.seen[marker] = now
            self.crowd.arrived(now)
        self.tail = text[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.crowd.lost += 1
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("stream closed before it opened"))


class Crowd:
    """
    C{count} subscribers to C{/events}, spread over loopback addresses (the server allows a few per address).
    """

    def __init__(self, count: int, per_address: int) -> None:
        self.count, self.per_address = count, per_address
        self.subscribers: list[_Subscriber] = []
        self.marker = b""
        self.times: list[float] = []
        self.lost = 0
        self.all_seen: asyncio.Event | None = None

    async def open(self, port: int) -> None:
        """
        Open every stream and wait for each to start.
        """
        loop = asyncio.get_running_loop()
        self.all_seen = asyncio.Event()
        for i in range(self.count):
            source = f"127.0.0.{2 + i // self.per_address}"
            _, sub = await loop.create_connection(
                lambda: _Subscriber(self), "127.0.0.1", port, local_addr=(source, 0)
            )
            self.subscribers.append(sub)
        await asyncio.gather(*(s.opened for s in self.subscribers))

    def expect(self, marker: bytes) -> None:
        """
        Start waiting for C{marker}.
        """
        self.marker, self.times = marker, []
        assert self.all_seen is not None
        self.all_seen.clear()

    def arrived(self, when: float) -> None:
        """
        One subscriber saw the marker.
        """
        self.times.append(when)
        if len(self.times) == self.count and self.all_seen is not None:
            self.all_seen.set()

    def close(self) -> None:
        """
        Close every stream.
        """
        for sub in self.subscribers:
            sub.transport.close()


def main() -> None:
    """
    The command line: one HTTP load run.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-s", "--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(http_load(args.port, args.path, args.concurrency, args.seconds))


if __name__ == "__main__":
    main()
