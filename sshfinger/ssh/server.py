"""
The Conch SSH server: the factory with its own host keys, an authentication service with sane limits that logs
every attempt, and the realm that turns an authenticated login into a L{ShellUser}.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.conch.error import IgnoreAuthentication, ValidPublicKey
from twisted.conch.interfaces import IConchUser
from twisted.conch.openssh_compat import primes
from twisted.conch.ssh import connection, factory, keys, transport, userauth
from twisted.conch.ssh.common import getNS
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.finger.render import sanitize
from sshfinger.model.peers import describe_peer, peer_key
from sshfinger.shell.app import ShellApp
from sshfinger.ssh.hostkeys import fingerprint
from sshfinger.ssh.penalties import SourcePenalties
from sshfinger.ssh.session import ShellUser

#: Seconds a client has to authenticate (Conch's default is ten hours).
LOGIN_GRACE = 60.0
#: Failed authentication attempts before the connection is cut.
MAX_AUTH_FAILURES = 6
#: Seconds to wait before answering a failed password.
PASSWORD_DELAY = 1.0

#: The Diffie-Hellman groups of OpenSSH's sshd, for the group-exchange key exchange.
MODULI = "/etc/ssh/moduli"

#: Key exchanges Conch offers that hash with SHA-1; sshfinger offers none of them (nor does OpenSSH's sshd).
WEAK_KEY_EXCHANGES = frozenset(
    {b"diffie-hellman-group1-sha1", b"diffie-hellman-group14-sha1", b"diffie-hellman-group-exchange-sha1"}
)
#: Signature algorithms that sign a SHA-1 digest: refused for host keys and for client keys alike.
WEAK_SIGNATURES = frozenset({b"ssh-rsa", b"ssh-dss"})


def _peer_address(transport: Any) -> IAddress | None:
    """
    The client's address behind an SSH transport, or L{None} if it cannot be had.
    """
    try:
        return transport.transport.getPeer()  # type: ignore[no-any-return]
    except Exception:
        return None


def _key_fingerprint(kind: bytes, data: bytes) -> str:
    if kind != b"publickey":
        return ""
    try:
        _, blob, _ = getNS(data[1:], 2)
        return fingerprint(keys.Key.fromString(blob))
    except Exception:
        return "unreadable-key"


class UserAuthServer(userauth.SSHUserAuthServer):
    """
    C{ssh-userauth} with the factory's limits (grace time, failures before disconnect, password delay) and a
    structured log event for every success and failure: peer, login, method and key fingerprint.
    """

    log = Logger()

    def serviceStarted(self) -> None:
        """
        Take the limits from the factory, then start as Conch does.
        """
        server_factory = self.transport.factory
        self.loginTimeout = server_factory.login_grace
        # Conch disconnects once the count of failures exceeds this number.
        self.attemptsBeforeDisconnect = server_factory.max_auth_failures - 1
        self.passwordDelay = server_factory.password_delay
        if server_factory.clock is not None:
            self.clock = server_factory.clock
        super().serviceStarted()

    def tryAuth(self, kind: bytes, user: bytes, data: bytes) -> Deferred[Any]:
        """
        Try one method and log its outcome (a public-key query without a signature is not an attempt).
        """
        d = super().tryAuth(kind, user, data)
        if kind == b"none":
            return d
        login = user.decode("utf-8", "replace")
        address = _peer_address(self.transport)
        fields = {
            "peer": describe_peer(address),
            "login": login,
            "method": kind.decode("ascii", "replace"),
            "fingerprint": _key_fingerprint(kind, data),
        }

        def succeeded(result: Any) -> Any:
            self.log.info(
                "SSH login accepted: {login} from {peer} by {method} {fingerprint}", outcome="accepted", **fields
            )
            return result

        def failed(reason: Failure) -> Failure:
            if not reason.check(IgnoreAuthentication, ValidPublicKey):
                self.log.info(
                    "SSH login refused: {login} from {peer} by {method} {fingerprint}: {reason}",
                    outcome="refused",
                    reason=reason.getErrorMessage(),
                    **fields,
                )
                host = peer_key(address)
                penalty = self.transport.factory.penalties.failed(host)
                if penalty:
                    self.log.warn(
                        "SSH source {host} penalised for {seconds:.0f} s after repeated failures",
                        host=host,
                        seconds=penalty,
                        outcome="penalised",
                    )
            return reason

        return d.addCallbacks(succeeded, failed)

    def auth_publickey(self, packet: bytes) -> Deferred[Any]:
        """
        Refuse a client key offered for a SHA-1 signature (L{WEAK_SIGNATURES}, which OpenSSH's sshd refuses
        too); check any other as Conch does.
        """
        algorithm = getNS(packet[1:])[0]
        if algorithm in WEAK_SIGNATURES:
            name = algorithm.decode("ascii")
            return fail(UnauthorizedLogin(f"{name} signatures use SHA-1 and are refused"))
        return super().auth_publickey(packet)


class ServerTransport(transport.SSHServerTransport):
    """
    Conch's server transport, without the 40 ms stall OpenSSH clients otherwise see on every round trip (their
    Nagle meets our delayed ACK, see NOTES): TCP_NODELAY is set, and TCP_QUICKACK re-armed after every read
    (Linux only; elsewhere nothing changes).

    It offers only the algorithms OpenSSH's sshd still offers by default: no SHA-1 key exchange
    (L{WEAK_KEY_EXCHANGES}), no CBC mode or 3DES, no HMAC over SHA-1 or MD5.  (Host-key signatures are chosen
    per connection by L{SSHFactory.buildProtocol}.)
    """

    log = Logger()
    _peer_checked = False

    supportedKeyExchanges = [
        kex for kex in transport.SSHServerTransport.supportedKeyExchanges if kex not in WEAK_KEY_EXCHANGES
    ]
    supportedCiphers = [cipher for cipher in transport.SSHServerTransport.supportedCiphers if cipher.endswith(b"-ctr")]
    supportedMACs = [mac for mac in transport.SSHServerTransport.supportedMACs if mac.startswith(b"hmac-sha2-")]

    def connectionMade(self) -> None:
        """
        Turn off Nagle, then start as Conch does.
        """
        self._socket_option(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        """
        Handle the data, then ask the kernel to acknowledge at once.

        Under a wrapping transport (a L{ProtocolWrapper}), the first data is when a PROXY wrapper knows the real
        client: one serving a penalty is refused then (L{SSHFactory.penalised}), as a direct one is on connecting.
        """
        if not self._peer_checked:
            self._peer_checked = True
            wrapper = self.transport
            if isinstance(wrapper, ProtocolWrapper) and self.factory.penalised(wrapper.getPeer()):
                wrapper.loseConnection()
                return
        super().dataReceived(data)
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            self._socket_option(socket.IPPROTO_TCP, quickack)

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        """
        A client's ordinary goodbye ("disconnected by application", what OpenSSH sends on every exit) is
        logged at info; other disconnect reasons stay errors, as Conch logs them.
        """
        if reasonCode == transport.DISCONNECT_BY_APPLICATION:
            reason = sanitize(description.decode("utf-8", "replace"))  # the peer's text: no control characters
            self.log.info("SSH client disconnected: {description}", description=reason)
            return
        super().receiveError(reasonCode, description)

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
    authentication limits, and per-source penalties for addresses that keep failing.

    @ivar penalties: the L{SourcePenalties}.
    """

    log = Logger()

    protocol = ServerTransport
    #: Where L{getPrimes} looks for Diffie-Hellman groups.
    moduli = MODULI
    services = {
        b"ssh-userauth": UserAuthServer,
        b"ssh-connection": connection.SSHConnection,
    }

    def __init__(
        self,
        portal: Portal,
        host_keys: dict[bytes, keys.Key],
        login_grace: float = LOGIN_GRACE,
        max_auth_failures: int = MAX_AUTH_FAILURES,
        password_delay: float = PASSWORD_DELAY,
        clock: Any = None,
    ) -> None:
        """
        @param portal: authenticates logins and hands out L{ShellUser}s.
        @param host_keys: private host keys by SSH key type.
        @param login_grace: seconds allowed for authentication.
        @param max_auth_failures: failed attempts before disconnecting.
        @param password_delay: seconds before a failed password is answered.
        @param clock: the reactor (L{None}: Conch's global one).
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
        self.penalties = SourcePenalties(clock)

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
        host = peer_key(address)
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
        The groups for the group-exchange key exchange: OpenSSH's (L{moduli}) if readable, else the 2048-bit
        group of RFC 3526, as OpenSSH's sshd falls back to.  (Without any, Conch would log a line on every
        connection and not offer the exchange.)
        """
        try:
            moduli = primes.parseModuliFile(self.moduli)
        except (OSError, ValueError):
            moduli = {}
        return moduli or {2048: [(transport.DH_GENERATOR, transport.DH_PRIME)]}

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

    def requestAvatar(self, avatarId: bytes, mind: object, *interfaces: Any) -> tuple[Any, ShellUser, Any]:
        """
        Build the avatar for C{avatarId} (bytes, as SSH presents it).
        """
        if IConchUser not in interfaces:
            raise NotImplementedError("sshfinger only serves SSH logins")
        login = avatarId.decode("utf-8", "replace").lower()
        user = ShellUser(login, self.app)
        return IConchUser, user, user.logout
