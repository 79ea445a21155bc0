"""
SSH signatures (OpenSSH's C{PROTOCOL.sshsig}, what C{ssh-keygen -Y sign} writes), and the signed-plan rule.

A plan is signed with C{ssh-keygen -Y sign -f KEY -n sshfinger-plan plan}.  The signature counts only while it
verifies against the plan as stored (the bytes a client downloads as the file C{plan}, see L{plan_bytes}) and
one of the account's current keys, so any later edit of the plan, or removing the key, takes the mark away.
Ed25519, ECDSA (NIST P-256/384/521) and RSA with SHA-2 signatures are accepted; SHA-1 (C{ssh-rsa}) is not.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from twisted.conch.ssh import keys
from twisted.conch.ssh.common import NS, getNS

#: The namespace a plan signature must be made for (C{ssh-keygen -Y sign -n sshfinger-plan}).
PLAN_NAMESPACE = "sshfinger-plan"

#: Longest armored signature accepted (an RSA-16384 signature is about 4.5 kB armored).
MAX_SIGNATURE_TEXT = 8192

_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}

#: Signature algorithms accepted for each key type (as L{keys.Key.sshType} names it).
_ALGORITHMS = {
    b"ssh-ed25519": frozenset({b"ssh-ed25519"}),
    b"ssh-rsa": frozenset({b"rsa-sha2-256", b"rsa-sha2-512"}),
    b"ecdsa-sha2-nistp256": frozenset({b"ecdsa-sha2-nistp256"}),
    b"ecdsa-sha2-nistp384": frozenset({b"ecdsa-sha2-nistp384"}),
    b"ecdsa-sha2-nistp521": frozenset({b"ecdsa-sha2-nistp521"}),
}

#: How C{ssh-keygen -l} names each key type.
_TYPE_NAMES = {"Ed25519": "ED25519", "EC": "ECDSA", "RSA": "RSA"}


class SignatureError(ValueError):
    """
    A signature that cannot be read, or does not verify; the message is one line for the user.
    """


@dataclass(frozen=True)
class SSHSignature:
    """
    A parsed SSH signature.

    @ivar key: the public key that made it.
    @ivar namespace: what it was made for (C{sshfinger-plan}).
    @ivar hash_name: C{b"sha256"} or C{b"sha512"}: how the message was hashed before signing.
    @ivar signature: the signature in SSH wire format (algorithm name and blob).
    """

    key: keys.Key
    namespace: str
    hash_name: bytes
    signature: bytes

    def verifies(self, message: bytes) -> bool:
        """
        Whether the signature is valid for C{message} (the key is not checked against anyone's keys here).
        """
        try:
            algorithm = getNS(self.signature)[0]
        except Exception:
            return False
        if algorithm not in _ALGORITHMS.get(self.key.sshType(), frozenset()):
            return False
        digest = _HASHES[self.hash_name](message).digest()
        signed = _MAGIC + NS(self.namespace.encode("utf-8")) + NS(b"") + NS(self.hash_name) + NS(digest)
        try:
            return bool(self.key.verify(self.signature, signed))
        except Exception:
            return False


def parse_signature(text: str) -> SSHSignature:
    """
    Read an armored SSH signature (the C{.sig} file C{ssh-keygen -Y sign} writes).

    @raise SignatureError: with one line saying what is wrong.
    """
    if len(text) > MAX_SIGNATURE_TEXT:
        raise SignatureError(f"signature is longer than {MAX_SIGNATURE_TEXT} characters")
    body = text.strip()
    if not body.startswith(_BEGIN) or not body.endswith(_END):
        raise SignatureError("not an SSH signature (expected the file 'ssh-keygen -Y sign' writes)")
    encoded = "".join(body[len(_BEGIN) : -len(_END)].split())
    try:
        blob = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SignatureError("SSH signature is not valid base64") from None
    try:
        if blob[:6] != _MAGIC or int.from_bytes(blob[6:10], "big") != 1:
            raise SignatureError("not a version 1 SSH signature")
        key_blob, namespace, _reserved, hash_name, signature, rest = getNS(blob[10:], 5)
    except SignatureError:
        raise
    except Exception:
        raise SignatureError("SSH signature is truncated") from None
    if rest:
        raise SignatureError("SSH signature has trailing data")
    if hash_name not in _HASHES:
        raise SignatureError(f"unsupported signature hash {hash_name.decode('ascii', 'replace')!r}")
    try:
        key = keys.Key.fromString(key_blob, type="blob")
    except Exception:
        raise SignatureError("SSH signature holds an unreadable public key") from None
    if key.sshType() not in _ALGORITHMS:
        raise SignatureError(f"unsupported signing key type {key.sshType().decode('ascii', 'replace')}")
    return SSHSignature(key, namespace.decode("utf-8", "replace"), hash_name, signature)


def fingerprint(key: keys.Key) -> str:
    """
    The C{SHA256:} fingerprint of C{key}, as C{ssh-keygen -l} prints it.
    """
    return "SHA256:" + b64encode(hashlib.sha256(key.blob()).digest()).decode("ascii").rstrip("=")


def describe_key(key: keys.Key) -> str:
    """
    C{"ED25519 key SHA256:..."}: the key's type as C{ssh-keygen -l} names it, and its fingerprint.
    """
    return f"{_TYPE_NAMES.get(key.type(), key.type())} key {fingerprint(key)}"


def plan_bytes(plan: str) -> bytes:
    """
    The bytes of a stored plan as a file: UTF-8 with a final newline (none for an empty plan).
    """
    return (plan + "\n").encode("utf-8") if plan else b""


def _line_key(line: str) -> bytes | None:
    """
    The public key blob of one C{authorized_keys} line (options before the key type allowed), or L{None}.
    """
    words = line.split()
    for index, word in enumerate(words[:-1]):
        if word.encode("ascii", "replace") in _ALGORITHMS:
            try:
                return binascii.a2b_base64(words[index + 1].encode("ascii"), strict_mode=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                return None
    return None


def check_plan_signature(plan: str, signature_text: str, key_lines: Iterable[str]) -> str:
    """
    Verify a plan signature against the plan and the account's keys.

    The signed message is the plan as a file (L{plan_bytes}); a signature of the same text without the final
    newline is accepted too.

    @param plan: the stored plan.
    @param signature_text: the armored signature.
    @param key_lines: the account's C{authorized_keys} lines.
    @return: L{describe_key} of the signing key.
    @raise SignatureError: if it does not verify, was made for another namespace, or by a key that is not one
        of C{key_lines}.
    """
    if not plan:
        raise SignatureError("there is no plan to sign")
    signature = parse_signature(signature_text)
    if signature.namespace != PLAN_NAMESPACE:
        raise SignatureError(f"signature is for namespace {signature.namespace!r}; sign with -n {PLAN_NAMESPACE}")
    message = plan_bytes(plan)
    if not (signature.verifies(message) or signature.verifies(message[:-1])):
        raise SignatureError("signature does not match the stored plan")
    blob = signature.key.blob()
    if not any(_line_key(line) == blob for line in key_lines):
        raise SignatureError(f"signing key {fingerprint(signature.key)} is not one of the account's keys")
    return describe_key(signature.key)


@lru_cache(maxsize=1024)
def _cached_mark(plan: str, signature_text: str, key_lines: tuple[str, ...]) -> str | None:
    try:
        return check_plan_signature(plan, signature_text, key_lines)
    except SignatureError:
        return None


def plan_signed_by(plan: str, signature_text: str, key_lines: Iterable[str]) -> str | None:
    """
    L{describe_key} of the key that signed C{plan}, if the signature verifies now; L{None} otherwise.

    Results are cached by their inputs, so renderers may call this on every answer.
    """
    if not plan or not signature_text:
        return None
    return _cached_mark(plan, signature_text, tuple(key_lines))


def signed_plan_line(plan: str, signature_text: str, key_lines: Iterable[str]) -> str | None:
    """
    The line finger and the shell show under a signed plan (C{"Plan signed with ED25519 key SHA256:..."}), or
    L{None} when the plan carries no signature that verifies now.
    """
    signer = plan_signed_by(plan, signature_text, key_lines)
    return None if signer is None else f"Plan signed with {signer}"


def verify_report(login: str, plan: str, signature_text: str, key_lines: Iterable[str]) -> tuple[bool, str]:
    """
    Re-check an account's plan signature, for C{verify LOGIN}: whether it verifies, and one line saying so.
    """
    if not signature_text:
        return False, f"{login}: the plan is not signed"
    try:
        signer = check_plan_signature(plan, signature_text, key_lines)
    except SignatureError as e:
        return False, f"{login}: the plan's signature does not verify: {e}"
    return True, f"{login}: Plan signed with {signer}"


def split_signed(text: str) -> tuple[str, str]:
    """
    Split a plan followed by its armored signature (C{cat plan plan.sig}) into the two; the signature part is
    empty when there is none.
    """
    start = text.find(_BEGIN)
    if start < 0:
        return text, ""
    return text[:start], text[start:]


__all__ = [
    "MAX_SIGNATURE_TEXT",
    "PLAN_NAMESPACE",
    "SSHSignature",
    "SignatureError",
    "check_plan_signature",
    "describe_key",
    "fingerprint",
    "parse_signature",
    "plan_bytes",
    "plan_signed_by",
    "signed_plan_line",
    "split_signed",
    "verify_report",
]
