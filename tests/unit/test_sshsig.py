"""
Tests for L{sshfinger.model.sshsig} (SSH signatures of plans), the store rule that a new plan drops its
signature, and the C{plan_signature} column of the SQLite store.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import textwrap
from base64 import b64encode

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.conch.ssh import keys
from twisted.conch.ssh.common import NS
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.render import render_record
from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account, Actor, normalize_changes
from sshfinger.model.sshsig import (
    SignatureError,
    check_plan_signature,
    parse_signature,
    plan_signed_by,
    signed_plan_line,
    split_signed,
    verify_report,
)
from sshfinger.shell import commands
from sshfinger.shell.commands import CommandError, Context, Interaction, Reply
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend
from sshfinger.store.sqlite import SCHEMA_VERSION, SQLiteBackend

#: A signature made by OpenSSH 9.2 (C{ssh-keygen -Y sign -n sshfinger-plan}) of C{b"hello\nworld\n"}.
OPENSSH_SIGNATURE = """\
-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgmHy6u3MOggZKiAH00uKBeZ+CaT
5wdD0yygreBsY/B+IAAAAOc3NoZmluZ2VyLXBsYW4AAAAAAAAABnNoYTUxMgAAAFMAAAAL
c3NoLWVkMjU1MTkAAABAwqkHF3gwAxX/Xm1eOt37FgSC4rd6m/y+JCeApazU+2jYlHVn2Z
QOY4sbatBo44RWWK9S1J/Uzi2S1PlOAI/nAw==
-----END SSH SIGNATURE-----
"""
#: The public key that made L{OPENSSH_SIGNATURE}.
OPENSSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJh8urtzDoIGSogB9NLigXmfgmk+cHQ9MsoK3gbGPwfi root@vm"
OPENSSH_FINGERPRINT = "SHA256:YChxR/qU8Lle0tpyfPthkgkgLoJpJPJbVEEifV6qS8I"


def sign(
    key: keys.Key,
    message: bytes,
    namespace: str = "sshfinger-plan",
    hash_name: bytes = b"sha512",
    signature_type: bytes | None = None,
) -> str:
    """
    Make an armored SSH signature as C{ssh-keygen -Y sign} does (PROTOCOL.sshsig).
    """
    digest = hashlib.new(hash_name.decode(), message).digest()
    signed = b"SSHSIG" + NS(namespace.encode()) + NS(b"") + NS(hash_name) + NS(digest)
    signature = key.sign(signed, signatureType=signature_type) if signature_type else key.sign(signed)
    blob = b"SSHSIG" + (1).to_bytes(4, "big") + NS(key.public().blob()) + NS(namespace.encode()) + NS(b"")
    blob += NS(hash_name) + NS(signature)
    body = "\n".join(textwrap.wrap(b64encode(blob).decode(), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{body}\n-----END SSH SIGNATURE-----\n"


def line_of(key: keys.Key) -> str:
    """
    The C{authorized_keys} line of a key.
    """
    return key.public().toString("OPENSSH").decode() + " test"


ED25519 = keys.Key(ed25519.Ed25519PrivateKey.generate())
ECDSA = keys.Key(ec.generate_private_key(ec.SECP256R1()))
RSA = keys.Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


class VerifyTests(SynchronousTestCase):
    """
    Checking a plan's signature against the plan and the account's keys.
    """

    def test_openssh_signature(self) -> None:
        """
        A signature made by the real C{ssh-keygen} verifies against the plan stored without its final newline.
        """
        signer = check_plan_signature("hello\nworld", OPENSSH_SIGNATURE, [OPENSSH_KEY])
        self.assertEqual(signer, f"ED25519 key {OPENSSH_FINGERPRINT}")

    def test_key_types(self) -> None:
        """
        Ed25519, ECDSA and RSA (rsa-sha2-512 and -256) signatures verify, named as C{ssh-keygen -l} names them.
        """
        cases = [(ED25519, None, "ED25519"), (ECDSA, None, "ECDSA"), (RSA, b"rsa-sha2-512", "RSA"),
                 (RSA, b"rsa-sha2-256", "RSA")]  # fmt: skip
        for key, kind, name in cases:
            signature = sign(key, b"my plan\n", signature_type=kind)
            self.assertTrue(check_plan_signature("my plan", signature, [line_of(key)]).startswith(f"{name} key "))

    def test_sha1_rsa_refused(self) -> None:
        """
        An RSA signature over SHA-1 (C{ssh-rsa}) does not verify.
        """
        signature = sign(RSA, b"my plan\n", signature_type=b"ssh-rsa")
        self.assertRaises(SignatureError, check_plan_signature, "my plan", signature, [line_of(RSA)])

    def test_plan_without_final_newline(self) -> None:
        """
        A signature of the text without a final newline (C{printf 'x' > plan}) verifies too.
        """
        signature = sign(ED25519, b"my plan")
        self.assertTrue(check_plan_signature("my plan", signature, [line_of(ED25519)]))

    def test_tampered_plan(self) -> None:
        """
        A plan that differs from the signed one is refused.
        """
        signature = sign(ED25519, b"my plan\n")
        error = self.assertRaises(SignatureError, check_plan_signature, "my plan!", signature, [line_of(ED25519)])
        self.assertIn("does not match", str(error))

    def test_other_key(self) -> None:
        """
        A valid signature by a key that is not one of the account's is refused, naming the key.
        """
        signature = sign(ECDSA, b"my plan\n")
        error = self.assertRaises(SignatureError, check_plan_signature, "my plan", signature, [line_of(ED25519)])
        self.assertIn("is not one of the account's keys", str(error))

    def test_key_line_with_options(self) -> None:
        """
        A key stored with C{authorized_keys} options still counts as the account's.
        """
        signature = sign(ED25519, b"my plan\n")
        line = 'from="127.0.0.1" ' + line_of(ED25519)
        self.assertTrue(check_plan_signature("my plan", signature, [line]))

    def test_namespace(self) -> None:
        """
        A signature made for another namespace (C{-n file}) is refused with the namespace to use.
        """
        signature = sign(ED25519, b"my plan\n", namespace="file")
        error = self.assertRaises(SignatureError, check_plan_signature, "my plan", signature, [line_of(ED25519)])
        self.assertIn("sshfinger-plan", str(error))

    def test_sha256_hash(self) -> None:
        """
        The message may be hashed with SHA-256 as well as SHA-512.
        """
        signature = sign(ED25519, b"my plan\n", hash_name=b"sha256")
        self.assertTrue(check_plan_signature("my plan", signature, [line_of(ED25519)]))

    def test_unreadable(self) -> None:
        """
        Text that is not an SSH signature, bad base64, a truncated or foreign blob: one-line errors.
        """
        good = sign(ED25519, b"x\n")
        body = "".join(good.splitlines()[1:-1])
        for text in ["hello", "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----",
                     f"-----BEGIN SSH SIGNATURE-----\n{body[:40]}\n-----END SSH SIGNATURE-----",
                     "-----BEGIN SSH SIGNATURE-----\nQUJDREVGR0g=\n-----END SSH SIGNATURE-----",
                     "x" * 10000]:  # fmt: skip
            error = self.assertRaises(SignatureError, parse_signature, text)
            self.assertNotIn("\n", str(error))

    def test_no_plan(self) -> None:
        """
        An empty plan cannot carry a signature.
        """
        self.assertRaises(SignatureError, check_plan_signature, "", sign(ED25519, b""), [line_of(ED25519)])

    def test_mark(self) -> None:
        """
        L{signed_plan_line} is the line finger shows, only while the signature verifies with a current key.
        """
        signature = sign(ED25519, b"my plan\n")
        line = signed_plan_line("my plan", signature, [line_of(ED25519)])
        digest = b64encode(hashlib.sha256(ED25519.public().blob()).digest()).decode().rstrip("=")
        self.assertEqual(line, f"Plan signed with ED25519 key SHA256:{digest}")
        self.assertIsNone(signed_plan_line("my plan", signature, []))
        self.assertIsNone(signed_plan_line("my plan 2", signature, [line_of(ED25519)]))
        self.assertIsNone(plan_signed_by("my plan", "", [line_of(ED25519)]))

    def test_verify_report(self) -> None:
        """
        L{verify_report} says whether and by which key a plan is signed, or why not.
        """
        signature = sign(ED25519, b"my plan\n")
        self.assertEqual(verify_report("alice", "my plan", signature, [line_of(ED25519)])[0], True)
        self.assertEqual(verify_report("alice", "my plan", "", [])[1], "alice: the plan is not signed")
        ok, line = verify_report("alice", "other", signature, [line_of(ED25519)])
        self.assertFalse(ok)
        self.assertIn("does not verify", line)

    def test_split_signed(self) -> None:
        """
        C{cat plan plan.sig} splits into the plan and the signature.
        """
        signature = sign(ED25519, b"my plan\n")
        self.assertEqual(split_signed("my plan\n" + signature), ("my plan\n", signature))
        self.assertEqual(split_signed("my plan\n"), ("my plan\n", ""))


class StoreRuleTests(SynchronousTestCase):
    """
    The signature belongs to one text of the plan.
    """

    def test_new_plan_drops_signature(self) -> None:
        """
        A change of the plan that does not set a signature clears it; other changes keep it.
        """
        account = Account("alice", plan="signed", plan_signature="SIG\n")
        self.assertEqual(account.with_changes({"plan": "edited"}, "alice", 1.0).plan_signature, "")
        self.assertEqual(account.with_changes({"status": "x"}, "alice", 1.0).plan_signature, "SIG\n")
        self.assertEqual(account.with_changes({"plan": "signed"}, "alice", 1.0).plan_signature, "SIG\n")
        both = account.with_changes({"plan": "new", "plan_signature": "NEW\n"}, "alice", 1.0)
        self.assertEqual(both.plan_signature, "NEW\n")

    def test_normalized(self) -> None:
        """
        The field is text, bounded, stored with one final newline (or empty).
        """
        self.assertEqual(normalize_changes({"plan_signature": " S \n\n"}), {"plan_signature": "S\n"})
        self.assertEqual(normalize_changes({"plan_signature": ""}), {"plan_signature": ""})
        self.assertRaises(ValueError, normalize_changes, {"plan_signature": "x" * 9000})

    def test_finger_shows_mark(self) -> None:
        """
        Finger's record shows the mark under a signed plan, and not once the key is gone.
        """
        signature = sign(ED25519, b"my plan\n")
        account = Account("alice", plan="my plan", plan_signature=signature, keys=(line_of(ED25519),))
        lines = render_record(account, False, 0.0)
        self.assertEqual(lines[-2:], ["my plan", signed_plan_line("my plan", signature, account.keys)])
        self.assertEqual(render_record(account._replace(keys=()), False, 0.0)[-1], "my plan")


class SQLiteSignatureTests(SynchronousTestCase):
    """
    The C{plan_signature} column of the SQLite store (schema version 3).
    """

    def test_round_trip(self) -> None:
        """
        A signature is stored, survives reopening, and is cleared by a later plan change.
        """
        path = os.path.join(self.mktemp() + ".db")
        backend = SQLiteBackend(path)
        backend.open()
        actor = Actor("alice", "sftp")
        backend.create("alice", {"plan": "p"}, actor, 1.0)
        backend.update("alice", {"plan_signature": "SIG\n"}, actor, 2.0)
        backend.close()
        backend = SQLiteBackend(path)
        self.addCleanup(backend.close)
        accounts = backend.open()
        self.assertEqual(accounts["alice"].plan_signature, "SIG\n")
        account, changes = backend.update("alice", {"plan": "q"}, actor, 3.0)
        self.assertEqual(account.plan_signature, "")
        self.assertIn("plan_signature", [change.field for change in changes])
        connection = sqlite3.connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(connection.execute("SELECT version FROM version").fetchone()[0], SCHEMA_VERSION)
        self.assertEqual(connection.execute("SELECT plan_signature FROM accounts").fetchone()[0], "")


class SignedPlanCommandTests(SynchronousTestCase):
    """
    The shell's C{plan --signature} and C{verify}, and the C{sshfinger verify} tool.
    """

    def setUp(self) -> None:
        """
        A memory store where alice has an ed25519 key.
        """
        self.clock = Clock()
        self.store = CachedStore(
            MemoryBackend([Account("alice", keys=(line_of(ED25519),)), Account("bob")]), self.clock.seconds
        )
        self.store.open()

    def exec_as(self, login: str, line: str, stdin: str = "") -> Deferred[Reply]:
        """
        Run one exec command as C{login}, answering its input with C{stdin}.
        """
        context = Context(
            store=self.store, finger=FingerService(self.store, self.clock), login=login,
            actor=Actor(login, "exec", "127.0.0.1:5000"), interactive=False,
        )  # fmt: skip

        async def run() -> Reply:
            result = await commands.run(context, commands.split(line))
            if isinstance(result, Interaction):
                result = await result.finish(stdin)
            assert isinstance(result, Reply)
            return result

        return Deferred.fromCoroutine(run())

    def lines(self, login: str, line: str, stdin: str = "") -> list[str]:
        """
        Run a command that must succeed; return its lines.
        """
        return self.successResultOf(self.exec_as(login, line, stdin)).lines

    def fails(self, login: str, line: str, stdin: str = "") -> str:
        """
        Run a command that must fail; return its one-line message.
        """
        return self.failureResultOf(self.exec_as(login, line, stdin), CommandError).getErrorMessage()

    def test_plan_with_signature(self) -> None:
        """
        C{cat plan plan.sig | ssh host plan --signature} sets the plan and its signature; finger shows the
        mark and C{verify} confirms it.
        """
        signature = sign(ED25519, b"signed\n")
        reply = self.lines("alice", "plan --signature", "signed\n" + signature)
        self.assertIn("signed with ED25519 key SHA256:", reply[0])
        self.assertEqual(self.store.peek("alice").plan_signature, signature)
        self.assertIn("alice: Plan signed with ED25519 key", self.lines("bob", "verify alice")[0])
        self.assertTrue(self.lines("alice", "finger alice")[-1].startswith("Plan signed with ED25519 key"))

    def test_bad_signature_refused(self) -> None:
        """
        A signature of another text, or no signature at all, is refused and nothing is stored.
        """
        message = self.fails("alice", "plan --signature", "tampered\n" + sign(ED25519, b"signed\n"))
        self.assertIn("does not match the stored plan", message)
        self.assertIn("no signature after the plan", self.fails("alice", "plan --signature", "plain\n"))
        self.assertEqual(self.store.peek("alice").plan, "")

    def test_verify_unsigned(self) -> None:
        """
        C{verify} of an unsigned plan fails (exit status 1) saying so.
        """
        self.assertEqual(self.fails("bob", "verify"), "bob: the plan is not signed")
