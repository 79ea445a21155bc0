"""
Tests for L{sshfinger.store.registry}: backends chosen by the C{--store} value.
"""

from __future__ import annotations

import os
import sys
import types

from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.errors import StoreError
from sshfinger.store import registry
from sshfinger.store.interfaces import IStoreBackend
from sshfinger.store.memory import MemoryBackend
from sshfinger.store.registry import (
    StoreOptions,
    check_store_spec,
    open_backend,
    parse_spec,
    redact_spec,
    register_backend,
)
from sshfinger.store.sqlite import SQLiteBackend


class ParseTests(SynchronousTestCase):
    """
    L{parse_spec} splits a value into a scheme and the target its opener gets.
    """

    def test_forms(self) -> None:
        """
        C{memory}, C{memory:}, C{sqlite:PATH}, C{sqlite:///PATH}, a bare path (even with a colon in it) and a
        C{postgresql://} URL (kept whole, for the driver) each go to their backend.
        """
        self.patch(registry, "_REGISTRY", dict(registry._REGISTRY))
        for scheme in ("postgresql", "postgres"):
            register_backend(scheme, lambda target, options: MemoryBackend())
        self.assertEqual(parse_spec("memory"), ("memory", ""))
        self.assertEqual(parse_spec("memory:"), ("memory", ""))
        self.assertEqual(parse_spec("sqlite:/var/lib/s.db"), ("sqlite", "/var/lib/s.db"))
        self.assertEqual(parse_spec("sqlite:///var/lib/s.db"), ("sqlite", "///var/lib/s.db"))  # check strips //
        self.assertEqual(parse_spec("/var/lib/s.db"), ("sqlite", "/var/lib/s.db"))
        self.assertEqual(parse_spec("run/sshfinger.db"), ("sqlite", "run/sshfinger.db"))
        self.assertEqual(parse_spec("odd:name.db"), ("sqlite", "odd:name.db"))
        url = "postgresql://finger@db.example/sshfinger?sslmode=require"
        self.assertEqual(parse_spec(url), ("postgresql", url))
        self.assertEqual(parse_spec("postgres:///db?host=/run/postgresql")[0], "postgres")

    def test_refused(self) -> None:
        """
        An unknown C{scheme://} URL and an empty value are refused with one line naming what is known.
        """
        error = self.assertRaises(ValueError, parse_spec, "mongodb://localhost/x")
        self.assertIn("unknown store type 'mongodb'", str(error))
        self.assertIn("postgresql", str(error))
        self.assertRaises(ValueError, parse_spec, "")


class OpenTests(SynchronousTestCase):
    """
    L{open_backend} and L{check_store_spec}.
    """

    def test_builtin(self) -> None:
        """
        The shipped backends open from their specs with the options given.
        """
        memory = open_backend("memory:", StoreOptions(audit_keep=7))
        self.assertIsInstance(memory, MemoryBackend)
        path = os.path.abspath(self.mktemp())
        for spec in (path, f"sqlite:{path}", f"sqlite://{path}"):
            backend = open_backend(spec)
            self.assertIsInstance(backend, SQLiteBackend)
            self.assertEqual(backend.path, path)  # type: ignore[attr-defined]

    def test_check_sqlite(self) -> None:
        """
        A SQLite target that is a directory, or in a missing directory, is refused when options are parsed.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        self.assertIn("is a directory", str(self.assertRaises(ValueError, check_store_spec, directory)))
        missing = os.path.join(directory, "nope", "s.db")
        self.assertIn("does not exist", str(self.assertRaises(ValueError, check_store_spec, f"sqlite:{missing}")))
        self.assertEqual(check_store_spec("memory"), "memory")

    def test_registered_backend(self) -> None:
        """
        A module that registers a scheme is used for it, with the target and options, without editing the
        registry's callers.
        """
        opened: list[tuple[str, StoreOptions]] = []
        backend = MemoryBackend()

        def opener(target: str, options: StoreOptions) -> IStoreBackend:
            opened.append((target, options))
            return backend

        self.patch(registry, "_REGISTRY", dict(registry._REGISTRY))
        register_backend("toy", opener)
        options = StoreOptions(audit_keep=3)
        self.assertIs(open_backend("toy:abc", options), backend)
        self.assertEqual(opened, [("abc", options)])

    def test_lazy_module(self) -> None:
        """
        A C{postgresql://} spec imports C{sshfinger.store.postgresql}, which registers itself; if that import
        fails, the error is one line saying which extra to install.
        """
        # (without the real PostgreSQL registration, which another test may have imported already)
        unregistered = {scheme: r for scheme, r in registry._REGISTRY.items() if scheme not in ("postgresql", "postgres")}
        self.patch(registry, "_REGISTRY", unregistered)
        self.patch(registry, "LAZY_MODULES", {"postgresql": "sshfinger_test_fake_pg"})
        error = self.assertRaises(StoreError, open_backend, "postgresql://db/x")
        self.assertIn("pip install 'sshfinger[postgresql]'", str(error))
        self.assertNotIn("\n", str(error))
        self.assertIn("pip install", str(self.assertRaises(ValueError, check_store_spec, "postgresql://db/x")))

        backend = MemoryBackend()
        module = types.ModuleType("sshfinger_test_fake_pg")
        exec("from sshfinger.store.registry import register_backend", module.__dict__)
        module.register_backend("postgresql", lambda target, options: backend)  # type: ignore[attr-defined]
        self.patch(sys, "modules", {**sys.modules, "sshfinger_test_fake_pg": module})
        self.assertIs(open_backend("postgresql://db/x"), backend)


class RedactTests(SynchronousTestCase):
    """
    L{redact_spec}: what the tool and the doctor print of a C{--store} value.
    """

    def test_passwords_hidden(self) -> None:
        """
        A URL's password, in its user part or as a parameter, becomes C{***}; the user, host and database
        stay; paths and URLs without a password are unchanged.
        """
        self.assertEqual(
            redact_spec("postgresql://finger:s3cret@db.example:5432/finger"), "postgresql://finger:***@db.example:5432/finger"
        )
        self.assertEqual(
            redact_spec("postgresql:///finger?host=/run/postgresql&password=s3cret"),
            "postgresql:///finger?host=/run/postgresql&password=***",
        )
        for unchanged in ("postgresql://finger@db/finger", "/var/lib/sshfinger.db", "memory:", "sqlite:x.db"):
            self.assertEqual(redact_spec(unchanged), unchanged)
