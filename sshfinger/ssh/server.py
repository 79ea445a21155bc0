"""
The Conch SSH server: the factory with its own host keys, an authentication service with sane limits that logs
every attempt, and the realm that turns an authenticated login into a L{ShellUser}.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.conch.interfaces import IConchUser
from twisted.conch.ssh import connection, factory, keys, transport
from twisted.conch.ssh.common import NS, getNS
from twisted.cred.portal import IRealm, Portal
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.peers import IPV6_PREFIX, describe_peer, peer_key
from sshfinger.ops.logs import escape_peer_text
from sshfinger.shell.app import ShellApp
from sshfinger.ssh.admission import MAX_PER_PEER, MAX_STARTUPS, Admission, Startups
from sshfinger.ssh.groups import gex_groups
from sshfinger.ssh.pacing import PacedServerTransport
from sshfinger.ssh.penalties import SourcePenalties
from sshfinger.ssh.session import ShellUser
from sshfinger.ssh.userauth import WEAK_SIGNATURES, UserAuthServer, peer_address

#: Seconds from the TCP accept a client has to authenticate (Conch's default is ten hours after key exchange).
LOGIN_GRACE = 60.0
#: Failed authentication attempts before the connection is cut.
MAX_AUTH_FAILURES = 6
#: Seconds to wait before answering a failed password.
PASSWORD_DELAY = 1.0

#: The largest Diffie-Hellman group offered for group exchange, in bits: 128-bit security, as curve25519 and the
#: RSA-3072 host key give.  OpenSSH's sshd goes to 8192, but a handshake's DH steps hold the GIL, and so the
#: reactor thread, for 1.7 ms in all at 3072 bits, 3.5 ms at 4096 and 17 ms at 8192 (C{bench/gex.py}), where
#: finger's idle p99 is under 2 ms (C{bench/floods.py}).  A client asking for more gets this one (OpenSSH's accept
#: any group from 2048 bits up).
MAX_GEX_BITS = 3072

#: Key exchanges Conch offers that hash with SHA-1; sshfinger offers none of them (nor does OpenSSH's sshd).
WEAK_KEY_EXCHANGES = frozenset(
    {b"diffie-hellman-group1-sha1", b"diffie-hellman-group14-sha1", b"diffie-hellman-group-exchange-sha1"}
)
#: The longest SSH packet accepted, as OpenSSH's (256 KiB); Conch's own limit is 1 MiB.  A longer one is refused
#: once that much of it waits in the buffer, before any of it is decrypted.
MAX_PACKET = 256 * 1024


class SSHConnection(connection.SSHConnection):
    """
    C{ssh-connection} that refuses a channel type the login does not offer (port forwarding: C{ssh -L}, C{-D},
    C{-R}'s replies, agent forwarding) with one info line naming the peer and the login, instead of Conch's
    CRITICAL "channel open failed" and a traceback.
    """

    log = Logger()
    transport: Any

    def ssh_CHANNEL_OPEN(self, packet: bytes) -> None:
        """
        Refuse a channel type the avatar has no channel for; open any other as Conch does.
        """
        kind, rest = getNS(packet)
        offered = getattr(getattr(self.transport, "avatar", None), "channelLookup", {})
        if kind in offered or len(rest) < 4:
            super().ssh_CHANNEL_OPEN(packet)
            return
        (sender,) = struct.unpack(">L", rest[:4])
        self.log.info(
            "SSH channel {kind} refused for {login} from {peer} [{conn}]: not offered",
            kind=escape_peer_text(kind),
            outcome="refused",
            **self.transport.log_fields(),
        )
        self.transport.sendPacket(
            connection.MSG_CHANNEL_OPEN_FAILURE,
            struct.pack(">2L", sender, connection.OPEN_ADMINISTRATIVELY_PROHIBITED)
            + NS(b"channel type not offered by this server")
            + NS(b""),
        )


class ServerTransport(PacedServerTransport):
    """
    Conch's server transport, with OpenSSH's admission: the grace time counts from the TCP accept and covers the
    banner, the key exchange and authentication; a connection is counted against L{SSHFactory.admission} (the
    unauthenticated connections in all, the connections from one address) and closed at once when over a cap.
    Every event it logs carries the peer, a connection id (C{conn}) and, once known, the login (escaped).

    Without the 40 ms stall OpenSSH clients otherwise see on every round trip (their Nagle meets our delayed ACK,
    see NOTES): TCP_NODELAY is set, and TCP_QUICKACK re-armed after every read (Linux only; elsewhere nothing
    changes).

    It offers only the algorithms OpenSSH's sshd still offers by default: no SHA-1 key exchange
    (L{WEAK_KEY_EXCHANGES}), no CBC mode or 3DES, no HMAC over SHA-1 or MD5.  (Host-key signatures are chosen
    per connection by L{SSHFactory.buildProtocol}.)  No connection holds the reactor thread for long
    (L{PacedServerTransport}).

    @ivar conn: the connection id in the log, C{"ssh-17"}.
    @ivar peer: the client's address as logged.
    @ivar peer_key: the client's address as counted (L{peer_key}).
    @ivar login: the login the client last tried, escaped; C{"-"} before any.
    """

    log = Logger()
    factory: SSHFactory
    transport: Any
    _peer_checked = False
    _admitted = False
    _authenticated = False
    _grace: IDelayedCall | None = None
    conn = "ssh-?"
    peer = "unknown"
    peer_key = "unknown"
    login = "-"

    supportedKeyExchanges = [
        kex for kex in transport.SSHServerTransport.supportedKeyExchanges if kex not in WEAK_KEY_EXCHANGES
    ]
    supportedCiphers = [cipher for cipher in transport.SSHServerTransport.supportedCiphers if cipher.endswith(b"-ctr")]
    supportedMACs = [mac for mac in transport.SSHServerTransport.supportedMACs if mac.startswith(b"hmac-sha2-")]

    def log_fields(self) -> dict[str, str]:
        """
        The fields every event of this connection carries: C{peer}, C{conn}, C{login}.
        """
        return {"peer": self.peer, "conn": self.conn, "login": self.login}

    def connectionMade(self) -> None:
        """
        Start the grace time; admit the client (a direct one now; one behind a PROXY wrapper once its first data
        names it); turn off Nagle; then start as Conch does.
        """
        self.conn = self.factory.next_connection_id()
        self._identify()
        self._grace = self.factory.reactor.callLater(self.factory.login_grace, self._grace_expired)
        if not isinstance(self.transport, ProtocolWrapper) and not self._admit():
            return
        self._socket_option(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        super().connectionMade()

    def _identify(self) -> None:
        address = peer_address(self)
        self.peer = describe_peer(address)
        self.peer_key = peer_key(address, self.factory.ipv6_prefix)

    def _admit(self) -> bool:
        self._admitted = self.factory.admission.admit(self.peer_key, self.peer)
        if not self._admitted:
            self._close()
        return self._admitted

    def _close(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def _grace_expired(self) -> None:
        self._grace = None
        self.log.info(
            "SSH login grace time of {seconds:g} s ran out for {peer} [{conn}] (login {login})",
            seconds=self.factory.login_grace,
            outcome="timeout",
            **self.log_fields(),
        )
        self._close()

    def setService(self, service: Any) -> None:
        """
        Start C{service}; the connection service starts once the client has authenticated: its grace time ends
        and it no longer counts as unauthenticated.
        """
        if service.name == b"ssh-connection" and not self._authenticated:
            self._authenticated = True
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            if self._admitted:
                self.factory.admission.authenticated()
        super().setService(service)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Release the connection's admission and its grace timer, stop the service and log the avatar out as Conch
        does, and log the close with the connection's fields (in place of Conch's bare "connection lost").
        """
        self.stop_pacing()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self._admitted:
            self._admitted = False
            self.factory.admission.release(self.peer_key, self._authenticated)
        if self.service:
            self.service.serviceStopped()
        if hasattr(self, "avatar"):
            self.logoutFunction()
        self.log.info("SSH connection closed: {peer} [{conn}] (login {login})", **self.log_fields())

    def dataReceived(self, data: bytes) -> None:
        """
        Handle the data, then ask the kernel to acknowledge at once.  A packet longer than L{MAX_PACKET} closes
        the connection as soon as that much of it has arrived (a 1 MB exec is not buffered and decrypted first).

        Under a wrapping transport (a L{ProtocolWrapper}), the first data is when a PROXY wrapper knows the real
        client: one serving a penalty or over a cap is refused then (L{SSHFactory.penalised}, L{Admission}), as
        a direct one is on connecting.
        """
        if not self._peer_checked:
            self._peer_checked = True
            wrapper = self.transport
            if isinstance(wrapper, ProtocolWrapper):
                self._identify()
                if self.factory.penalised(wrapper.getPeer()) or not self._admit():
                    self._close()
                    return
        elif not self._admitted:
            return
        super().dataReceived(data)
        if len(self.buf) > MAX_PACKET and not getattr(self.transport, "disconnecting", False):
            self.log.info(
                "SSH packet over {limit} bytes from {peer} [{conn}] (login {login}): connection closed",
                limit=MAX_PACKET,
                outcome="too-long",
                **self.log_fields(),
            )
            self.sendDisconnect(transport.DISCONNECT_PROTOCOL_ERROR, b"packet too long")
            return
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            self._socket_option(socket.IPPROTO_TCP, quickack)

    def dispatchMessage(self, messageNum: int, payload: bytes) -> None:
        """
        Handle one message as Conch does, unless the connection is already being closed (a flood cut off by the
        shell, an admission refusal): then what is still buffered is dropped unread, so a 64 KiB read of small
        packets costs nothing more once the server has decided to close.
        """
        if getattr(self.transport, "disconnecting", False):
            self.buf = b""
            return
        super().dispatchMessage(messageNum, payload)

    def ssh_KEXINIT(self, packet: bytes) -> Any:
        """
        Log the client's version string (escaped) with the connection's fields, then go on as Conch does.
        """
        if self.otherVersionString and not getattr(self, "_version_logged", False):
            self._version_logged = True
            self.log.debug(
                "SSH client {peer} [{conn}] is {version}", version=escape_peer_text(self.otherVersionString),
                **self.log_fields(),
            )
        return super().ssh_KEXINIT(packet)

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        """
        A client's disconnect message, logged with the connection's fields and its text escaped: its ordinary
        goodbye ("disconnected by application", what OpenSSH sends on every exit) at info, other reasons as
        errors.
        """
        fields = dict(self.log_fields(), code=reasonCode, description=escape_peer_text(description))
        if reasonCode == transport.DISCONNECT_BY_APPLICATION:
            self.log.info("SSH client disconnected: {description} ({login} from {peer} [{conn}])", **fields)
        else:
            self.log.error(
                "SSH client disconnected with error {code}: {description} ({login} from {peer} [{conn}])", **fields
            )
        self.transport.loseConnection()

    def _socket_option(self, level: int, option: int) -> None:
        handle = getattr(self.transport, "getHandle", None)
        if handle is None:
            return
        try:
            handle().setsockopt(level, option, 1)
        except (OSError, AttributeError):
            pass


class SSHFactory(factory.SSHFactory):
    """
    The SSH server factory: per-instance host keys (Conch's are class attributes shared by every factory), the
    authentication limits, admission (L{Admission}: the caps on unauthenticated connections and on connections
    per address) and per-source penalties for addresses that keep failing.

    @ivar penalties: the L{SourcePenalties}.
    @ivar admission: the L{Admission}.
    """

    log = Logger()

    protocol = ServerTransport
    #: The largest group offered for group exchange (see L{sshfinger.ssh.groups}).
    max_gex_bits = MAX_GEX_BITS
    #: Runs a key exchange's answer in a thread (L{PacedServerTransport}); L{None}: in the reactor thread.
    run_kex: Callable[[Callable[[], None]], Any] | None = None
    #: Why a client key may not log in (login, key blob, client address), or L{None}: the keys' options.
    key_policy: Callable[[bytes, bytes, Any], str | None] | None = None
    services = {
        b"ssh-userauth": UserAuthServer,
        b"ssh-connection": SSHConnection,
    }

    def __init__(
        self,
        portal: Portal,
        host_keys: dict[bytes, keys.Key],
        login_grace: float = LOGIN_GRACE,
        max_auth_failures: int = MAX_AUTH_FAILURES,
        password_delay: float = PASSWORD_DELAY,
        clock: Any = None,
        max_startups: Startups | None = None,
        max_per_peer: int = MAX_PER_PEER,
        ipv6_prefix: int = IPV6_PREFIX,
    ) -> None:
        """
        @param portal: authenticates logins and hands out L{ShellUser}s.
        @param host_keys: private host keys by SSH key type.
        @param login_grace: seconds from the TCP accept to the end of authentication.
        @param max_auth_failures: failed attempts before disconnecting.
        @param password_delay: seconds before a failed password is answered.
        @param clock: the reactor (L{None}: the global one).
        @param max_startups: the cap on unauthenticated connections (OpenSSH's default L{MAX_STARTUPS}).
        @param max_per_peer: the cap on connections from one address.
        @param ipv6_prefix: IPv6 clients are counted by this prefix (see L{peer_key}).
        """
        self.portal = portal
        self.privateKeys = dict(host_keys)
        self.publicKeys = {kind: key.public() for kind, key in host_keys.items()}
        self.login_grace = login_grace
        self.max_auth_failures = max_auth_failures
        self.password_delay = password_delay
        self.clock = clock
        if clock is None:
            from twisted.internet import reactor as clock
        self.reactor = clock
        self.ipv6_prefix = ipv6_prefix
        self.penalties = SourcePenalties(clock)
        self.admission = Admission(clock, max_startups or Startups.parse(MAX_STARTUPS), max_per_peer)
        self._ids = itertools.count(1)

    def next_connection_id(self) -> str:
        """
        A new connection id for the log: C{"ssh-1"}, C{"ssh-2"}, ...
        """
        return f"ssh-{next(self._ids)}"

    def buildProtocol(self, addr: Any) -> Any:
        """
        Refuse a source that is serving a penalty (the connection is closed at once); otherwise build the
        transport as Conch does, without host-key signatures over SHA-1 (L{WEAK_SIGNATURES}): an RSA host key
        signs with rsa-sha2-512 or rsa-sha2-256 only.
        """
        if self.penalised(addr):
            return None
        server = super().buildProtocol(addr)
        server.supportedPublicKeys = [name for name in server.supportedPublicKeys if name not in WEAK_SIGNATURES]
        return server

    def penalised(self, address: IAddress) -> bool:
        """
        Whether a connection from C{address} is to be refused because its host is serving a penalty (logged).
        """
        host = peer_key(address, self.ipv6_prefix)
        wait = self.penalties.blocked(host)
        if wait:
            self.log.info(
                "SSH connection from {host} refused: penalised for {seconds:.0f} s more",
                host=host,
                seconds=wait,
                outcome="penalised",
            )
        return bool(wait)

    def getPrimes(self) -> dict[int, list[tuple[int, int]]]:
        """
        The groups for the group-exchange key exchange: the RFC 3526 groups up to L{max_gex_bits}, which the
        cryptography library uses without checking their primes (see L{sshfinger.ssh.groups}: a group from
        C{/etc/ssh/moduli} cost 35 s of reactor time).
        """
        return gex_groups(self.max_gex_bits)

    def getPublicKeys(self) -> dict[bytes, keys.Key]:
        """
        This factory's public host keys.
        """
        return self.publicKeys

    def getPrivateKeys(self) -> dict[bytes, keys.Key]:
        """
        This factory's private host keys.
        """
        return self.privateKeys


@implementer(IRealm)
class ShellRealm:
    """
    Turns an authenticated login into a L{ShellUser} of the shared L{ShellApp}.
    """

    def __init__(self, app: ShellApp) -> None:
        """
        @param app: the shared application state.
        """
        self.app = app

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, ShellUser, Any]:
        """
        Build the avatar for C{avatarId} (bytes, as SSH presents it; anonymous logins are not served).
        """
        if IConchUser not in interfaces or not isinstance(avatarId, bytes):
            raise NotImplementedError("sshfinger only serves authenticated SSH logins")
        login = avatarId.decode("utf-8", "replace").lower()
        user = ShellUser(login, self.app)
        return IConchUser, user, user.logout
