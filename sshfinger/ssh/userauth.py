"""
SSH user authentication as sshfinger runs it: every attempt logged once with its peer, connection id and login
(escaped); failures counted toward the peer's penalty while still in flight, so parallel guessing costs no more
bcrypt checks than serial; a key's C{authorized_keys} options (C{from=}, C{expiry-time=}) checked at login.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.error import IgnoreAuthentication, ValidPublicKey
from twisted.conch.ssh import keys, transport, userauth
from twisted.conch.ssh.common import getNS
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure

from sshfinger.ops.logs import escape_peer_text
from sshfinger.ssh.hostkeys import fingerprint

#: Signature algorithms that sign a SHA-1 digest: refused for host keys and for client keys alike.
WEAK_SIGNATURES = frozenset({b"ssh-rsa", b"ssh-dss"})


def peer_address(transport: Any) -> IAddress | None:
    """
    The client's address behind an SSH transport, or L{None} if it cannot be had.
    """
    try:
        return transport.transport.getPeer()
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
    C{ssh-userauth} with the factory's limits (failures before disconnect, password delay) and a structured log
    event for every success and failure: peer, connection id, login (escaped), method and key fingerprint.

    A password attempt is counted against its source's penalty while it is in flight (L{SourcePenalties.begin}):
    a source with as many failures and attempts under way as the penalty threshold gets no further bcrypt check,
    on any of its connections, so guessing over forty parallel connections costs the server no more checks than
    guessing over one.  (The grace time is the transport's: L{ServerTransport}.)
    """

    log = Logger()
    transport: Any

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
        Try one method and log its outcome (a public-key query without a signature is not an attempt); refuse a
        password attempt without checking it when its source has used up its attempts (see the class docstring).
        """
        if kind == b"none":
            return super().tryAuth(kind, user, data)
        login = escape_peer_text(user)
        self.transport.login = login
        server_factory = self.transport.factory
        host = self.transport.peer_key
        penalties = server_factory.penalties
        how = kind.decode("ascii", "replace")
        fingerprint = _key_fingerprint(kind, data)
        if fingerprint:
            how += " " + fingerprint
        fields = dict(self.transport.log_fields(), method=kind.decode("ascii", "replace"), how=how)
        fields["fingerprint"] = fingerprint
        counted = kind == b"password"
        if counted and not penalties.begin(host):
            self.log.info(
                "SSH login refused: {login} from {peer} by {how}: too many attempts from {host} [{conn}]",
                outcome="throttled",
                host=host,
                **fields,
            )
            self.transport.sendDisconnect(
                transport.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, b"too many authentication attempts"
            )
            return fail(UnauthorizedLogin("too many attempts from this address"))
        d = super().tryAuth(kind, user, data)

        def succeeded(result: Any) -> Any:
            if counted:
                penalties.end(host, failed=False)
            self.log.info("SSH login accepted: {login} from {peer} by {how} [{conn}]", outcome="accepted", **fields)
            return result

        def failed(reason: Failure) -> Failure:
            if reason.check(IgnoreAuthentication, ValidPublicKey):
                if counted:
                    penalties.end(host, failed=False)
                return reason
            self.log.info(
                "SSH login refused: {login} from {peer} by {how}: {reason} [{conn}]",
                outcome="refused",
                reason=reason.getErrorMessage(),
                **fields,
            )
            penalty = penalties.end(host, failed=True) if counted else penalties.failed(host)
            if penalty:
                self.log.warn(
                    "SSH source {host} penalised for {seconds:.0f} s after repeated failures",
                    host=host,
                    seconds=penalty,
                    outcome="penalised",
                    **self.transport.log_fields(),
                )
            return reason

        return d.addCallbacks(succeeded, failed)

    def auth_publickey(self, packet: bytes) -> Deferred[Any]:
        """
        Refuse a client key offered for a SHA-1 signature (L{WEAK_SIGNATURES}, which OpenSSH's sshd refuses
        too), or one whose C{authorized_keys} options refuse this client (the factory's C{key_policy}); check
        any other as Conch does.
        """
        algorithm = getNS(packet[1:])[0]
        if algorithm in WEAK_SIGNATURES:
            name = algorithm.decode("ascii")
            return fail(UnauthorizedLogin(f"{name} signatures use SHA-1 and are refused"))
        policy = getattr(getattr(self.transport, "factory", None), "key_policy", None)  # from=, expiry-time=
        if policy is not None:
            refusal = policy(self.user, getNS(packet[1:], 2)[1], peer_address(self.transport))
            if refusal:
                return fail(UnauthorizedLogin(refusal))
        return super().auth_publickey(packet)


__all__ = ["WEAK_SIGNATURES", "UserAuthServer", "peer_address"]
