"""
What every command of the C{sshfinger} tool shares: its one-line error, the store opened offline, and a
L{Deferred}'s result waited for (the tool runs no reactor: its store commits synchronously).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sshfinger.model.account import (
    Actor,
)
from sshfinger.store.cached import CachedStore
from sshfinger.store.interfaces import IStoreMaintenance, maintenance_of
from sshfinger.store.registry import check_store_spec, open_backend
from sshfinger.store.service import open_offline

T = TypeVar("T")


class CommandError(Exception):
    """
    A command cannot go on; the message is shown as one line.
    """


@contextmanager
def offline_store(spec: str) -> Iterator[CachedStore]:
    """
    Open the store for one command and close it afterwards.
    """
    store = open_offline(spec)
    try:
        yield store
    finally:
        store.close()


def maintenance(spec: str, what: str) -> IStoreMaintenance:
    """
    The maintenance operations of the store C{spec} names (the backend is not opened).

    @raise CommandError: with one line, if its backend has none.
    """
    backend = open_backend(check_store_spec(spec))
    found = maintenance_of(backend)
    if found is None:
        raise CommandError(f"the {backend.description} store does not support {what}")
    return found


def wait(d: Deferred[T]) -> T:
    """
    Return the result of a L{Deferred} that has already fired (the offline store commits synchronously).
    """
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise RuntimeError("the store did not answer synchronously")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def actor(channel: str = "cli") -> Actor:
    """
    The local person running the tool, for C{updated_by} and the audit trail.
    """
    try:
        who = getpass.getuser()
    except Exception:
        who = str(os.getuid())
    return Actor(f"{who}@local", channel)


__all__ = ["CommandError", "actor", "maintenance", "offline_store", "wait"]
