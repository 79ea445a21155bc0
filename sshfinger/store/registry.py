"""
Backends chosen by the C{--store} value: a URL-like spec whose scheme names the backend.

    - C{memory:} (or C{memory}): nothing survives the process;
    - C{sqlite:PATH}, or a bare C{PATH}: a SQLite file;
    - C{postgresql://...} (or C{postgres://...}): registered by C{sshfinger.store.postgresql}, imported the first
      time such a spec is used, so the base install needs no driver.

A backend module calls L{register_backend} with an opener; nothing else (the CLI, doctor, tap) names a backend
class.  The opener is given the spec's target: the part after C{scheme:}, or the whole spec for a C{scheme://}
URL when the backend registered with C{url=True} (the default: a driver such as libpq parses the URL itself), and
the L{StoreOptions}.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sshfinger.model.errors import StoreError
from sshfinger.store.interfaces import IStoreBackend
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES

#: Seconds between two looks for changes committed by other processes, where the backend polls.
POLL_INTERVAL = 0.5

#: Schemes whose backend module registers itself when first imported.
LAZY_MODULES = {"postgresql": "sshfinger.store.postgresql", "postgres": "sshfinger.store.postgresql"}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")


@dataclass(frozen=True)
class StoreOptions:
    """
    What every opener is given besides the target.

    @ivar reactor: the reactor of a running server (L{None} for the offline tool): feeds watch with it.
    @ivar audit_keep: audit entries to keep (L{None}: what the store records, else the default).
    @ivar audit_max_bytes: bytes of audit entries to keep (L{None}: likewise).
    @ivar poll_interval: seconds between polls, for a feed that polls.
    """

    reactor: Any = None
    audit_keep: int | None = None
    audit_max_bytes: int | None = None
    poll_interval: float = POLL_INTERVAL


Opener = Callable[[str, StoreOptions], IStoreBackend]
Checker = Callable[[str], str]


@dataclass(frozen=True)
class Registration:
    """
    One registered backend.

    @ivar opener: makes an unopened backend from a target and options.
    @ivar check: validates a target at option-parsing time and returns it (raises L{ValueError} with one line).
    @ivar threaded: whether its calls block (they then run on the store's writer thread); C{False} for memory.
    @ivar url: whether a C{scheme://} spec reaches the opener whole (else only what follows C{scheme:}).
    """

    opener: Opener
    check: Checker
    threaded: bool = True
    url: bool = True


_REGISTRY: dict[str, Registration] = {}


def register_backend(
    scheme: str, opener: Opener, check: Checker | None = None, threaded: bool = True, url: bool = True
) -> None:
    """
    Make C{--store SCHEME:...} open a backend with C{opener}.

    @param check: validates a target when options are parsed (by default, any target is accepted then).
    @param threaded: whether the backend's calls may block (see L{Registration}).
    @param url: whether a C{SCHEME://...} spec reaches the opener whole (see L{Registration}).
    """
    _REGISTRY[scheme.lower()] = Registration(opener, check or (lambda target: target), threaded, url)


def parse_spec(spec: str) -> tuple[str, str]:
    """
    Split a C{--store} value into a scheme and the target its opener gets.

    @raise ValueError: for an unknown C{scheme://} URL or an empty value.
    @raise StoreError: if the module of a lazily registered scheme cannot be imported.
    """
    if not spec:
        raise ValueError("an empty store; give a file path, sqlite:PATH, memory: or a postgresql:// URL")
    if spec == "memory":
        return "memory", ""
    match = _SCHEME.match(spec)
    if match is not None:
        scheme = match.group(1).lower()
        if scheme in _REGISTRY or scheme in LAZY_MODULES:
            whole = match.group(2) and _registration(scheme).url
            return scheme, spec if whole else spec[len(match.group(1)) + 1 :]
        if match.group(2):
            known = ", ".join(sorted({*_REGISTRY, *LAZY_MODULES}))
            raise ValueError(f"unknown store type {scheme!r} (known: {known})")
    return "sqlite", spec  # a bare path


def redact_spec(spec: str) -> str:
    """
    Return a C{--store} value fit for output: a URL's password (in its user part, or a C{password=} parameter)
    replaced by C{***}; anything else unchanged.
    """
    scheme, sep, rest = spec.partition("://")
    if not sep:
        return spec
    authority, slash, tail = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and ":" in user:
        authority = f"{user.split(':', 1)[0]}:***@{host}"
    tail = re.sub(r"(?i)(password=)[^&\s]*", r"\1***", tail)
    return f"{scheme}://{authority}{slash}{tail}"


def _registration(scheme: str) -> Registration:
    if scheme not in _REGISTRY and scheme in LAZY_MODULES:
        try:
            importlib.import_module(LAZY_MODULES[scheme])
        except ImportError as e:
            raise StoreError(
                f"the {scheme} store needs its optional dependencies: pip install 'sshfinger[{scheme}]' ({e})"
            ) from None
    if scheme not in _REGISTRY:
        raise StoreError(f"no backend registered for {scheme!r}")
    return _REGISTRY[scheme]


def check_store_spec(spec: str) -> str:
    """
    Check a C{--store} value when options are parsed.

    @return: the value to use.
    @raise ValueError: with a one-line reason.
    """
    try:
        scheme, target = parse_spec(spec)
        registration = _registration(scheme)
    except StoreError as e:
        raise ValueError(str(e)) from None
    registration.check(target)
    return spec


def is_threaded(spec: str) -> bool:
    """
    Whether the backend of C{spec} blocks (and so needs the store's writer thread).
    """
    return _registration(parse_spec(spec)[0]).threaded


def open_backend(spec: str, options: StoreOptions | None = None) -> IStoreBackend:
    """
    Make the (unopened) backend a C{--store} value names.

    @raise StoreError: if the backend's module cannot be imported.
    @raise ValueError: if the value is not valid.
    """
    scheme, target = parse_spec(spec)
    registration = _registration(scheme)
    return registration.opener(registration.check(target), options or StoreOptions())


# The two backends that ship with the base install.


def _check_sqlite(target: str) -> str:
    if target.startswith("//"):
        target = target[2:]  # sqlite:///var/lib/x.db
    if not target:
        raise ValueError("sqlite: needs a file path")
    path = Path(target)
    if path.is_dir():
        raise ValueError(f"{target} is a directory; give the path of a SQLite file")
    if not path.parent.is_dir():
        raise ValueError(f"directory {str(path.parent)!r} does not exist")
    return target


def _open_sqlite(target: str, options: StoreOptions) -> IStoreBackend:
    from sshfinger.store.sqlite import SQLiteBackend

    return SQLiteBackend(
        target,
        changes_keep=options.audit_keep,
        changes_max_bytes=options.audit_max_bytes,
        clock=options.reactor,
        poll_interval=options.poll_interval,
    )


def _open_memory(target: str, options: StoreOptions) -> IStoreBackend:
    from sshfinger.store.memory import MemoryBackend

    return MemoryBackend(
        changes_keep=options.audit_keep or CHANGES_KEEP, changes_max_bytes=options.audit_max_bytes or CHANGES_MAX_BYTES
    )


register_backend("sqlite", _open_sqlite, _check_sqlite, url=False)
register_backend("memory", _open_memory, threaded=False)
