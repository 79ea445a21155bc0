"""
C{/events}: the live stream of changes to visible accounts, its caps, heartbeats and slow readers.
"""

from __future__ import annotations

import json

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from sshfinger.model.account import Actor
from sshfinger.web import limits
from tests.unit.webhelpers import HOST, WebTestCase, parse_response

ADMIN = Actor("root", "shell")


class EventTests(WebTestCase):
    """
    The event stream over a fake reactor.
    """

    def open_stream(self, host: str = "192.0.2.1") -> tuple[object, StringTransport]:
        """
        Open C{/events}; check its headers; return the channel and transport, the headers consumed.
        """
        channel, transport = self.connect(host)
        assert channel is not None
        channel.dataReceived(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())  # type: ignore[attr-defined]
        response = parse_response(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("content-type"), "text/event-stream; charset=utf-8")
        self.assertIn(b"retry: ", response.body)
        transport.clear()
        return channel, transport

    def events(self, transport: StringTransport) -> list[tuple[str, dict[str, str]]]:
        """
        The events written since the last call (chunk framing removed), as (event, data) pairs.
        """
        raw = transport.value()
        transport.clear()
        text = b""
        while raw:
            size_line, _, raw = raw.partition(b"\r\n")
            size = int(size_line, 16)
            text += raw[:size]
            raw = raw[size + 2 :]
        found = []
        for block in text.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if "event" in fields:
                found.append((fields["event"], json.loads(fields["data"])))
        return found

    def update(self, login: str, **changes: object) -> None:
        """
        Change an account through the store.
        """
        self.successResultOf(self.store.update(login, changes, ADMIN))
        self.reactor.advance(0)

    def test_update_streamed(self) -> None:
        """
        A status change of a visible account is sent at once as a C{user} event with the public fields only.
        """
        _, transport = self.open_stream()
        self.update("alice", status="Late")
        [(event, data)] = self.events(transport)
        self.assertEqual(event, "user")
        self.assertEqual(data["status"], "Late")
        self.assertEqual(set(data), {"login", "name", "status", "plan", "office", "phone", "fediverse", "plan_signed", "updated"})

    def test_hidden_account_never_streamed(self) -> None:
        """
        Changes to a hidden account send nothing, nor does its deletion; an account being hidden sends
        C{gone}, being shown again sends C{user}.
        """
        _, transport = self.open_stream()
        self.update("secret", status="still hidden")
        self.assertEqual(self.events(transport), [])
        self.successResultOf(self.store.delete("secret", ADMIN))
        self.reactor.advance(0)
        self.assertEqual(self.events(transport), [])
        self.update("alice", hidden=True)
        self.assertEqual(self.events(transport), [("gone", {"login": "alice"})])
        self.update("alice", status="hidden edit")
        self.assertEqual(self.events(transport), [])
        self.update("alice", hidden=False)
        self.assertEqual([e for e, _ in self.events(transport)], ["user"])
        self.assertNotIn(b"secret", transport.value())

    def test_hidden_account_from_a_reload_never_streamed(self) -> None:
        """
        An account created hidden by another process while this one was too far behind to follow (its view was
        reloaded whole) stays unstreamed: its next change sends no C{gone} naming it.
        """
        _, transport = self.open_stream()
        self.update("alice", status="Before")  # the stream knows which logins are hidden from here on
        self.assertEqual([e for e, _ in self.events(transport)], ["user"])
        other = self.store.backend.peer(changes_keep=1)
        other.create("ghost", {"hidden": True, "real_name": "Ghost"}, ADMIN, 1.0)
        other.update("alice", {"status": "pruned past"}, ADMIN, 2.0)
        self.successResultOf(self.store.catch_up())  # behind the retained changes: reloaded
        self.reactor.advance(0)
        self.assertIn("ghost", self.store.logins())
        self.events(transport)
        self.update("ghost", status="a hidden edit")
        self.assertEqual(self.events(transport), [])
        self.assertNotIn(b"ghost", transport.value())

    def test_create_and_delete(self) -> None:
        """
        A new account is sent as one C{user} event (though its commit holds several changes), a deleted visible
        one as C{gone}; a created hidden one sends nothing.
        """
        _, transport = self.open_stream()
        self.successResultOf(self.store.create("carol", ADMIN, {"status": "new", "real_name": "Carol"}))
        self.reactor.advance(0)
        self.assertEqual([(e, d["login"]) for e, d in self.events(transport)], [("user", "carol")])
        self.successResultOf(self.store.create("dave", ADMIN, {"hidden": True, "status": "psst"}))
        self.reactor.advance(0)
        self.assertEqual(self.events(transport), [])
        self.successResultOf(self.store.delete("carol", ADMIN))
        self.reactor.advance(0)
        self.assertEqual(self.events(transport), [("gone", {"login": "carol"})])

    def test_hostile_text_in_event(self) -> None:
        """
        Stored text with a newline-like separator or angle brackets cannot break the event framing or be HTML.
        """
        _, transport = self.open_stream()
        self.update("alice", status="a\u2028event: gone <b>")
        raw = transport.value()
        [(event, data)] = self.events(transport)
        self.assertEqual(event, "user")
        self.assertNotIn(b"<b>", raw)
        self.assertEqual(data["status"], "a event: gone <b>")

    def test_heartbeat(self) -> None:
        """
        Every L{limits.HEARTBEAT} seconds each stream gets a comment line, even when nothing changed.
        """
        _, transport = self.open_stream()
        self.reactor.advance(limits.HEARTBEAT)
        self.assertIn(b": ping\n\n", transport.value())

    def test_caps(self) -> None:
        """
        Past L{limits.MAX_SUBSCRIBERS_PER_ADDRESS} streams from one address, another gets 503; other addresses
        still get one; the subscriber gauge counts them.
        """
        for _ in range(limits.MAX_SUBSCRIBERS_PER_ADDRESS):
            self.open_stream()
        refused = self.exchange(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        self.assertEqual(refused.status, 503)
        self.open_stream("192.0.2.7")
        self.assertEqual(len(self.hub.subscribers), limits.MAX_SUBSCRIBERS_PER_ADDRESS + 1)
        self.assertEqual(self.metrics.sse_subscribers._value.get(), limits.MAX_SUBSCRIBERS_PER_ADDRESS + 1)

    def test_closed_stream_forgotten(self) -> None:
        """
        A client that goes away is removed from the hub and its address count.
        """
        channel, _ = self.open_stream()
        channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
        self.assertEqual(self.hub.subscribers, [])
        self.assertEqual(self.hub.per_address, {})

    def test_slow_reader_dropped(self) -> None:
        """
        A reader whose transport asked to pause (its buffer is full) is dropped at the next event instead of
        being buffered; the others get it.
        """
        _, slow = self.open_stream()
        _, fast = self.open_stream("192.0.2.8")
        assert slow.producer is not None
        slow.producer.pauseProducing()
        self.update("alice", status="one")
        self.assertEqual(slow.value(), b"")
        self.assertTrue(slow.disconnecting)
        self.assertEqual(self.hub.dropped, 1)
        self.assertEqual([e for e, _ in self.events(fast)], ["user"])
