"""
C{--auth store}: SSH passwords checked against bcrypt hashes kept with the accounts in the store (a PostgreSQL
store: see L{sshfinger.store.postgresql.extras.PasswordsMixin}), so that a password set on one node applies on
every node.

The hash is read from the store's memory (never from the database during a login, so logins keep working
while the database is away); the bcrypt check runs in a thread.  An unknown login costs one bcrypt check too, so
timing does not tell which logins exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

import bcrypt
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.account import Actor
from sshfinger.model.errors import StoreError
from sshfinger.ssh.passwd import DEFAULT_ROUNDS, hash_password

#: bcrypt looks at no more than this many bytes of a password.
BCRYPT_MAX_PASSWORD = 72


class PasswordStore(Protocol):
    """
    A store backend that keeps password hashes (the PostgreSQL backend).
    """

    def cached_password_hash(self, login: str) -> bytes | None:
        """
        The login's bcrypt hash from memory, or L{None}.  Never blocks.
        """

    def set_password_hash(self, login: str, hashed: bytes | None, actor: Actor, at: float) -> None:
        """
        Store the login's bcrypt hash (blocking).
        """


def keeps_passwords(backend: object) -> bool:
    """
    Whether a store backend can keep password hashes (C{--auth store}).
    """
    return callable(getattr(backend, "cached_password_hash", None)) and callable(
        getattr(backend, "set_password_hash", None)
    )


@implementer(ICredentialsChecker)
class StorePasswordChecker:
    """
    Check usernames and passwords against the bcrypt hashes in the store's memory.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(
        self,
        passwords: PasswordStore,
        run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]],
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        """
        @param passwords: the store backend holding the hashes.
        @param run_in_thread: runs the bcrypt check off the reactor thread.
        @param checkpw: the bcrypt check (replaceable in tests).
        """
        self._passwords = passwords
        self._run_in_thread = run_in_thread
        self._checkpw = checkpw
        self._dummy: bytes | None = None

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        """
        Check C{credentials}.

        @return: a L{Deferred} firing with the lower-cased login as UTF-8 bytes, or failing with
            L{UnauthorizedLogin}.
        """
        username = credentials.username
        login = (username.decode("utf-8", "replace") if isinstance(username, bytes) else str(username)).lower()
        password = credentials.password
        secret = password if isinstance(password, bytes) else str(password).encode("utf-8")
        hashed = self._passwords.cached_password_hash(login)
        try:
            d = self._run_in_thread(lambda: self._check(login, secret[:BCRYPT_MAX_PASSWORD], hashed))
        except Exception:
            return fail(self._refused(Failure()))
        return d.addErrback(self._refused)

    def _check(self, login: str, password: bytes, hashed: bytes | None) -> bytes:
        if hashed is not None:
            try:
                if self._checkpw(password, hashed):
                    return login.encode("utf-8")
            except ValueError:
                raise UnauthorizedLogin(f"malformed bcrypt hash stored for {login!r}") from None
        else:
            if self._dummy is None:
                self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode("ascii"), bcrypt.gensalt(DEFAULT_ROUNDS))
            self._checkpw(password, self._dummy)
        raise UnauthorizedLogin("wrong login or password")

    def _refused(self, reason: Failure) -> Failure:
        if not reason.check(UnauthorizedLogin):
            self.log.failure("Password check against the store failed", reason)
        elif "malformed" in str(reason.value):
            self.log.error("Refusing a password login: {error}", error=str(reason.value))
        return Failure(UnauthorizedLogin("password check failed"))


def store_password_setter(
    passwords: PasswordStore,
    run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]],
    clock: Callable[[], float],
    rounds: int = DEFAULT_ROUNDS,
) -> Callable[[str, str], Deferred[None]]:
    """
    The shell's C{passwd} for C{--auth store}: hash in a thread, then store the hash (shared by every node).
    """

    def set_password(login: str, password: str) -> Deferred[None]:
        actor = Actor(login, "shell")

        def unsaved(reason: Failure) -> None:
            reason.trap(StoreError)
            raise ValueError(str(reason.value))  # the shell's passwd reports it in one line

        return run_in_thread(
            lambda: passwords.set_password_hash(login.lower(), hash_password(password, rounds), actor, clock())
        ).addErrback(unsaved)

    return set_password


__all__ = ["PasswordStore", "StorePasswordChecker", "keeps_passwords", "store_password_setter"]
