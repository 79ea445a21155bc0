"""
Put the SSH service together from parsed options: host keys, credential checkers, the realm, the factory, the
listening endpoint and the thread pool that runs bcrypt.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.conch.checkers import SSHPublicKeyChecker
from twisted.conch.ssh import keys
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from sshfinger.model.account import MIN_PASSWORD_LENGTH, Change, check_password_strength
from sshfinger.ops.background import in_background, usable_cores
from sshfinger.ops.endpoints import listen_description
from sshfinger.shell.app import EDIT_RATE, ShellApp
from sshfinger.ssh import passwd
from sshfinger.ssh.admission import MAX_PER_PEER, MAX_STARTUPS, Startups
from sshfinger.ssh.checkers import BcryptFileChecker, StoreKeysDB, parse_authorized_key, review_passwd_file
from sshfinger.ssh.hostkeys import describe, fingerprint
from sshfinger.ssh.server import ShellRealm, SSHFactory
from sshfinger.store.interfaces import IUserStore, feed_of

#: Threads that run bcrypt checks: one per usable core; more would only queue for the same cores.
BCRYPT_THREADS = usable_cores()
#: Threads that compute key exchange answers (L{sshfinger.ssh.pacing}), apart from bcrypt's so that a login's
#: key exchange never waits behind password checks.
KEX_THREADS = usable_cores()


@implementer(ICredentialsChecker)
class FirstOfCheckers:
    """
    Ask several checkers of the same credentials in turn; the first that accepts wins.

    A cred L{Portal} keeps one checker per credentials interface; this lets C{--auth file:a --auth file:b} both
    count.
    """

    def __init__(self, checkers: Sequence[ICredentialsChecker]) -> None:
        """
        @param checkers: asked in this order.
        """
        self.checkers = list(checkers)
        self.credentialInterfaces = tuple(
            {interface for checker in checkers for interface in checker.credentialInterfaces}
        )

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """
        See L{ICredentialsChecker.requestAvatarId}.
        """
        remaining = [c for c in self.checkers if any(i.providedBy(credentials) for i in c.credentialInterfaces)]

        def next_checker(reason: Failure | None) -> Deferred[Any]:
            if reason is not None:
                reason.trap(UnauthorizedLogin)
            if not remaining:
                return fail(reason or UnauthorizedLogin())
            return maybeDeferred(remaining.pop(0).requestAvatarId, credentials).addErrback(next_checker)

        return next_checker(None)


def build_portal(realm: ShellRealm, checkers: Iterable[ICredentialsChecker]) -> Portal:
    """
    A portal over C{checkers}, several checkers of one credentials interface combined with L{FirstOfCheckers}.
    """
    by_interface: dict[Any, list[ICredentialsChecker]] = {}
    for checker in checkers:
        for interface in checker.credentialInterfaces:
            by_interface.setdefault(interface, []).append(checker)
    portal = Portal(realm)
    for interface, group in by_interface.items():
        portal.registerChecker(group[0] if len(group) == 1 else FirstOfCheckers(group), interface)
    return portal


class PoolService(MultiService):
    """
    Starts and stops a thread pool with the application.
    """

    def __init__(self, pool: ThreadPool) -> None:
        """
        @param pool: the pool to run.
        """
        super().__init__()
        self.pool = pool

    def startService(self) -> None:
        """
        Start the pool.
        """
        self.pool.start()
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        """
        Stop the pool.
        """
        result = super().stopService()
        self.pool.stop()
        return result


class SSHService(MultiService):
    """
    The SSH endpoint and its bcrypt thread pool; logs the host key fingerprints and passwd warnings at start.
    """

    log = Logger()

    def __init__(
        self, host_keys: dict[bytes, keys.Key], warnings: Sequence[str], key_directory: str = ""
    ) -> None:
        """
        @param host_keys: for the fingerprint log lines.
        @param warnings: startup warnings (plaintext passwords) to log loudly.
        @param key_directory: where the keys live, named in the log lines.
        """
        super().__init__()
        self.host_keys = host_keys
        self.warnings = warnings
        self.key_directory = key_directory

    def public_key_path(self, kind: bytes) -> str:
        """
        The C{.pub} file of the host key of type C{kind} (C{ssh_host_ed25519_key.pub}, ...).
        """
        name = "ecdsa" if kind.startswith(b"ecdsa") else kind.decode("ascii").removeprefix("ssh-")
        return os.path.join(self.key_directory, f"ssh_host_{name}_key.pub")

    def startService(self) -> None:
        """
        Log what an admin must check (the host keys' fingerprints, passwd warnings), then start listening.
        """
        for kind, key in sorted(self.host_keys.items()):
            self.log.info(
                "SSH host key {description}",
                description=describe(key.public(), self.public_key_path(kind)),
                fingerprint=fingerprint(key),
                key_type=kind.decode("ascii"),
            )
        for warning in self.warnings:
            self.log.warn("WARNING: {problem}", problem=warning)
        super().startService()


def forget_passwords(passwd_files: list[str], in_pool: Callable[..., Deferred[Any]]) -> Callable[[Change], None]:
    """
    A store subscriber that removes a deleted account's entries from the passwd files (in the bcrypt pool, under
    the files' lock), whichever process deleted it, so that a later account of the same name does not inherit
    the old password.
    """
    log = Logger(namespace="sshfinger.ssh.service")

    def forget(path: str, login: str) -> None:
        def removed(found: bool) -> None:
            if found:
                log.info("Password of deleted account {login} removed from {path}", login=login, path=path)

        def failed(failure: Failure) -> None:
            log.warn(
                "Cannot remove the password of deleted account {login} from {path}: {error}",
                login=login,
                path=path,
                error=failure.getErrorMessage(),
            )

        in_pool(lambda: passwd.delete_password(path, login)).addCallbacks(removed, failed)

    def changed(change: Change) -> None:
        if change.action == "delete":
            for path in passwd_files:
                forget(path, change.login)

    return changed


def make_ssh_service(
    config: Any, store: IUserStore, finger: Any, reactor: Any
) -> tuple[SSHService, ShellApp]:
    """
    Build the SSH service from parsed options.

    @param config: the parsed options: C{ssh}, C{host_keys}, C{passwd_files}, C{credCheckers}, C{admin},
        C{idle-timeout}, C{login-grace}, C{max-auth-failures}, C{max-startups}, C{max-ssh-per-peer},
        C{ipv6-prefix}, C{hostname}.
    @return: the service and the shared shell application state (for the manhole and tests).
    """
    pool = ThreadPool(minthreads=0, maxthreads=BCRYPT_THREADS, name="sshfinger-bcrypt")
    in_pool = in_background(reactor, pool)
    passwd_files: list[str] = list(config.get("passwd_files", []))
    keys_db = StoreKeysDB(store)
    checkers: list[ICredentialsChecker] = [SSHPublicKeyChecker(keys_db)]
    checkers += [BcryptFileChecker(path, in_pool) for path in passwd_files]
    checkers += list(config.get("credCheckers", []))
    warnings = [warning for path in passwd_files for warning in review_passwd_file(path)]

    min_length = int(config.get("min-password-length", MIN_PASSWORD_LENGTH))

    def write_password(login: str, password: str) -> Deferred[None]:
        return in_pool(lambda: passwd.set_password(passwd_files[0], login, password))

    # The shell's passwd command needs exactly one file to write to.
    save_password: Callable[[str, str], Deferred[None]] | None = write_password if len(passwd_files) == 1 else None
    if config.get("auth-store"):  # --auth store: hashes kept with the accounts (a PostgreSQL store)
        from sshfinger.ssh.storeauth import StorePasswordChecker, store_password_setter

        backend = store.backend  # type: ignore[attr-defined]
        checkers.append(StorePasswordChecker(backend, in_pool))
        save_password = store_password_setter(backend, in_pool, reactor.seconds)

    def set_password(login: str, password: str) -> Deferred[None]:
        assert save_password is not None
        try:
            check_password_strength(password, min_length)  # --min-password-length, whichever place keeps it
        except ValueError:
            return fail()
        return save_password(login, password)

    app = ShellApp(
        store=store,
        finger=finger,
        clock=reactor,
        hostname=config.get("hostname") or socket.gethostname(),
        admins=frozenset(login.lower() for login in config.get("admin", [])),
        idle_timeout=float(config.get("idle-timeout", 900)),
        set_password=set_password if save_password is not None else None,
        password_change_recorded=bool(config.get("auth-store")),
        parse_key=parse_authorized_key,
        fingerprint=fingerprint,
        edit_rate=float(config.get("edit-rate", EDIT_RATE)),
    )
    factory = SSHFactory(
        build_portal(ShellRealm(app), checkers),
        config["host_keys"],
        login_grace=float(config.get("login-grace", 60)),
        max_auth_failures=int(config.get("max-auth-failures", 6)),
        clock=reactor,
        max_startups=Startups.parse(str(config.get("max-startups", MAX_STARTUPS))),
        max_per_peer=int(config.get("max-ssh-per-peer", MAX_PER_PEER)),
        ipv6_prefix=int(config.get("ipv6-prefix", 64)),
    )
    kex_pool = ThreadPool(minthreads=0, maxthreads=KEX_THREADS, name="sshfinger-kex")
    factory.run_kex = in_background(reactor, kex_pool)
    factory.key_policy = lambda user, blob, address: keys_db.refusal(user, blob, address, reactor.seconds())
    if passwd_files:
        store.subscribe(forget_passwords(passwd_files, in_pool))
    feed = feed_of(getattr(store, "backend", None))
    if callable(getattr(feed, "share_penalties", None)):  # nodes on one PostgreSQL store count failures together
        factory.penalties = feed.share_penalties(factory.penalties, in_pool)  # type: ignore[union-attr]
    service = SSHService(config["host_keys"], warnings, config.get("keys", ""))
    PoolService(pool).setServiceParent(service)
    PoolService(kex_pool).setServiceParent(service)
    endpoint = strports.service(listen_description(config["ssh"]), factory, reactor)
    endpoint.setName("ssh-endpoint")
    endpoint.setServiceParent(service)
    return service, app
