"""
Tests for L{sshfinger.ssh.hostkeys}: generating, reusing and refusing host keys, and fingerprints as ssh-keygen
prints them.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.conch.ssh.keys import Key
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ssh.hostkeys import HostKeyError, describe, fingerprint, load_host_keys

SSH_KEYGEN = "/usr/bin/ssh-keygen"
COMMENT = "root@test"
GENERATED = {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key", "ssh_host_rsa_key.pub"}

#: A directory of generated host keys, made once and copied, since RSA 3072 generation is slow.
_template: str | None = None


def ssh_keygen(*args: str) -> str:
    """
    Run the real C{ssh-keygen} and return its standard output.
    """
    result = subprocess.run([SSH_KEYGEN, *args], check=True, capture_output=True, text=True)
    return result.stdout


def mode_of(path: str) -> int:
    """
    The permission bits of C{path}.
    """
    return stat.S_IMODE(os.stat(path).st_mode)


class HostKeysTestCase(SynchronousTestCase):
    """
    Tests for L{load_host_keys}.
    """

    if not os.access(SSH_KEYGEN, os.X_OK):
        skip = f"{SSH_KEYGEN} is not installed"

    def generated(self) -> str:
        """
        A fresh directory holding a copy of once-generated host keys (modes preserved).
        """
        global _template
        if _template is None:
            template = os.path.abspath(self.mktemp())
            load_host_keys(template, COMMENT)
            _template = template
        directory = self.mktemp()
        shutil.copytree(_template, directory)
        return directory

    def test_generates_ed25519_and_rsa(self) -> None:
        """
        On first start, an ed25519 and an RSA key are generated into four files: private keys in the OpenSSH
        format with mode 0600, public keys as C{type base64 comment} lines; no temporary file is left behind.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        keys = load_host_keys(directory, COMMENT)
        self.assertEqual(set(keys), {b"ssh-ed25519", b"ssh-rsa"})
        self.assertEqual(set(os.listdir(directory)), GENERATED)
        for name, ssh_type in [("ssh_host_ed25519_key", b"ssh-ed25519"), ("ssh_host_rsa_key", b"ssh-rsa")]:
            path = os.path.join(directory, name)
            self.assertEqual(mode_of(path), 0o600)
            self.assertEqual(mode_of(path + ".pub"), 0o644)
            key = keys[ssh_type]
            self.assertFalse(key.isPublic())
            with open(path, "rb") as f:
                self.assertTrue(f.read().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"))
            with open(path + ".pub", "rb") as f:
                self.assertEqual(f.read(), key.public().toString("openssh") + b" root@test\n")

    def test_rsa_key_is_3072_bits(self) -> None:
        """
        The generated RSA host key has at least 3072 bits.
        """
        keys = load_host_keys(self.generated())
        self.assertGreaterEqual(keys[b"ssh-rsa"].size(), 3072)

    def test_creates_missing_directory(self) -> None:
        """
        A missing directory (and its missing parents) is created with mode 0700 and filled.
        """
        directory = os.path.join(self.mktemp(), "etc", "keys")
        load_host_keys(directory)
        self.assertEqual(mode_of(directory), 0o700)
        self.assertEqual(set(os.listdir(directory)), GENERATED)

    def test_reuses_keys(self) -> None:
        """
        A later start loads the same keys and leaves every file untouched.
        """
        directory = self.generated()
        before = {}
        for name in GENERATED:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                before[name] = (f.read(), os.stat(path).st_mtime_ns, os.stat(path).st_ino)
        first = load_host_keys(directory)
        second = load_host_keys(directory)
        self.assertEqual(
            {t: fingerprint(k) for t, k in first.items()}, {t: fingerprint(k) for t, k in second.items()}
        )
        self.assertEqual(set(os.listdir(directory)), GENERATED)
        for name in GENERATED:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                self.assertEqual((f.read(), os.stat(path).st_mtime_ns, os.stat(path).st_ino), before[name])

    def test_loaded_keys_match_files(self) -> None:
        """
        The keys returned are the ones in the files: their public halves match the C{.pub} files.
        """
        directory = self.generated()
        keys = load_host_keys(directory)
        for name, ssh_type in [("ssh_host_ed25519_key", b"ssh-ed25519"), ("ssh_host_rsa_key", b"ssh-rsa")]:
            public = Key.fromFile(os.path.join(directory, name + ".pub"))
            self.assertEqual(keys[ssh_type].public(), public)

    def test_accessible_private_key_refused(self) -> None:
        """
        A private key readable or writable by group or others is refused with one line naming the file and
        the fix.
        """
        for mode in (0o640, 0o604, 0o620, 0o602, 0o660):
            directory = self.generated()
            path = os.path.join(directory, "ssh_host_rsa_key")
            os.chmod(path, mode)
            error = self.assertRaises(HostKeyError, load_host_keys, directory)
            message = str(error)
            self.assertIn(path, message)
            self.assertIn(f"{mode:04o}", message)
            self.assertIn("chmod 600", message)
            self.assertNotIn("\n", message)

    def test_garbage_key_refused(self) -> None:
        """
        A private key file that cannot be parsed is refused with one line naming the file.
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_ed25519_key")
        with open(path, "wb") as f:
            f.write(b"this is not a key\n\x00\xff")
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        self.assertIn(f"cannot parse host key {path}", str(error))
        self.assertNotIn("\n", str(error))

    def test_public_key_in_private_file_refused(self) -> None:
        """
        A public key where the private key belongs is refused.
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_ed25519_key")
        shutil.copyfile(path + ".pub", path)
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        self.assertEqual(str(error), f"host key {path} holds a public key, not a private key")

    def test_wrong_key_type_refused(self) -> None:
        """
        An RSA key in the ed25519 file is refused: the dict would otherwise lose a key type.
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_ed25519_key")
        shutil.copyfile(os.path.join(directory, "ssh_host_rsa_key"), path)
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        self.assertEqual(str(error), f"host key {path} holds a ssh-rsa key, expected ssh-ed25519")

    def test_small_rsa_key_refused(self) -> None:
        """
        An RSA host key below 2048 bits is refused.
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_rsa_key")
        small = Key(rsa.generate_private_key(public_exponent=65537, key_size=1024))
        with open(path, "wb") as f:
            f.write(small.toString("OPENSSH", subtype="v1"))
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        self.assertEqual(str(error), f"host key {path} is a 1024-bit RSA key; at least 2048 bits required")

    def test_missing_public_key_regenerated(self) -> None:
        """
        A private key without its C{.pub} file gets the C{.pub} rewritten from it; the private key stays.
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_ed25519_key")
        with open(path, "rb") as f:
            private = f.read()
        os.unlink(path + ".pub")
        keys = load_host_keys(directory, "admin@example")
        with open(path + ".pub", "rb") as f:
            self.assertEqual(f.read(), keys[b"ssh-ed25519"].public().toString("openssh") + b" admin@example\n")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), private)
        self.assertEqual(set(os.listdir(directory)), GENERATED)

    def test_directory_cannot_be_created(self) -> None:
        """
        A directory that is missing and cannot be created (its parent is a regular file) is refused with one
        line naming it.
        """
        parent = self.mktemp()
        with open(parent, "w") as f:
            f.write("a file\n")
        directory = os.path.join(parent, "keys")
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        self.assertEqual(str(error), f"cannot create host key directory {directory}: Not a directory")

    def test_directory_is_a_file(self) -> None:
        """
        A path that exists but is a regular file is refused as a directory.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("a file\n")
        error = self.assertRaises(HostKeyError, load_host_keys, path)
        self.assertEqual(str(error), f"host key directory {path} is not a directory")

    def test_key_cannot_be_written(self) -> None:
        """
        When a key must be generated and cannot be written, startup is refused with one line naming the file.

        (The tests may run as root, which ignores directory permissions: a directory in the place of the
        C{.pub} file makes the write fail instead.)
        """
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "ssh_host_ed25519_key.pub"))
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        path = os.path.join(directory, "ssh_host_ed25519_key")
        self.assertTrue(str(error).startswith(f"cannot write host key {path}: "), str(error))
        self.assertEqual([name for name in os.listdir(directory) if name.startswith(".")], [])

    def test_directory_not_writable(self) -> None:
        """
        A read-only directory without keys is refused with one line naming the key file.
        """
        if os.geteuid() == 0:
            raise self.skipTest("root can write into a read-only directory")
        directory = self.mktemp()
        os.mkdir(directory, 0o500)
        self.addCleanup(os.chmod, directory, 0o700)
        error = self.assertRaises(HostKeyError, load_host_keys, directory)
        path = os.path.join(directory, "ssh_host_ed25519_key")
        self.assertEqual(str(error), f"cannot write host key {path}: Permission denied")

    def test_ecdsa_loaded_when_present(self) -> None:
        """
        An ECDSA key made by ssh-keygen is loaded too; it is never generated (see
        L{test_generates_ed25519_and_rsa}).
        """
        directory = self.generated()
        path = os.path.join(directory, "ssh_host_ecdsa_key")
        ssh_keygen("-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", COMMENT, "-f", path)
        keys = load_host_keys(directory)
        self.assertEqual(set(keys), {b"ssh-ed25519", b"ssh-rsa", b"ecdsa-sha2-nistp384"})
        self.assertEqual(keys[b"ecdsa-sha2-nistp384"].public(), Key.fromFile(path + ".pub"))

    def test_ssh_keygen_keys_loaded(self) -> None:
        """
        Host keys made by ssh-keygen (as by C{ssh-keygen -A}) are used as they are.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        for kind, bits in [("ed25519", "256"), ("rsa", "3072")]:
            path = os.path.join(directory, f"ssh_host_{kind}_key")
            ssh_keygen("-q", "-t", kind, "-b", bits, "-N", "", "-C", COMMENT, "-f", path)
        keys = load_host_keys(directory)
        for kind, ssh_type in [("ed25519", b"ssh-ed25519"), ("rsa", b"ssh-rsa")]:
            path = os.path.join(directory, f"ssh_host_{kind}_key")
            self.assertEqual(keys[ssh_type].public(), Key.fromFile(path + ".pub"))


class FingerprintTestCase(SynchronousTestCase):
    """
    Tests for L{fingerprint} and L{describe} against the real C{ssh-keygen -lf}.
    """

    if not os.access(SSH_KEYGEN, os.X_OK):
        skip = f"{SSH_KEYGEN} is not installed"

    def test_generated_keys_match_ssh_keygen(self) -> None:
        """
        For the generated ed25519 and RSA keys, L{fingerprint} is the fingerprint C{ssh-keygen -lf FILE.pub}
        prints, and L{describe} is its whole line.
        """
        directory = self.mktemp()
        keys = load_host_keys(directory, COMMENT)
        for name, ssh_type in [("ssh_host_ed25519_key", b"ssh-ed25519"), ("ssh_host_rsa_key", b"ssh-rsa")]:
            line = ssh_keygen("-lf", os.path.join(directory, name + ".pub")).strip()
            self.assertEqual(line.split()[1], fingerprint(keys[ssh_type]))
            self.assertEqual(line, describe(keys[ssh_type], COMMENT))
        self.assertRegex(
            describe(keys[b"ssh-ed25519"], COMMENT), r"^256 SHA256:[A-Za-z0-9+/]{43} root@test \(ED25519\)$"
        )
        self.assertTrue(describe(keys[b"ssh-rsa"], COMMENT).startswith("3072 SHA256:"))

    def test_ecdsa_and_no_comment_match_ssh_keygen(self) -> None:
        """
        For ECDSA keys of every size and an empty comment (which ssh-keygen shows as C{no comment}),
        L{describe} of the public key is the line C{ssh-keygen -lf} prints.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        for bits in ("256", "384", "521"):
            path = os.path.join(directory, f"ecdsa{bits}")
            ssh_keygen("-q", "-t", "ecdsa", "-b", bits, "-N", "", "-C", "", "-f", path)
            key = Key.fromFile(path + ".pub")
            self.assertEqual(describe(key, ""), ssh_keygen("-lf", path + ".pub").strip())
            self.assertTrue(describe(key, "").endswith(" no comment (ECDSA)"))

    def test_fingerprint_is_unpadded(self) -> None:
        """
        The fingerprint is C{SHA256:} and 43 base64 characters without C{=} padding, the same for a private
        key and its public half.
        """
        key = Key(ed25519.Ed25519PrivateKey.generate())
        self.assertRegex(fingerprint(key), r"^SHA256:[A-Za-z0-9+/]{43}$")
        self.assertEqual(fingerprint(key), fingerprint(key.public()))


class UnsafeHostKeyFileTests(SynchronousTestCase):
    """
    Host key files that are not what they should be: refused with one line that never holds the file's content.
    """

    def setUp(self) -> None:
        """
        A keys directory with the generated keys.
        """
        self.directory = self.mktemp()
        load_host_keys(self.directory, "test")
        self.path = os.path.join(self.directory, "ssh_host_ed25519_key")

    def refused(self) -> str:
        """
        Load the directory, which must fail within five seconds; return the one-line message.
        """
        previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(AssertionError("load hung")))
        signal.alarm(5)
        try:
            error = self.assertRaises(HostKeyError, load_host_keys, self.directory)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        message = str(error)
        self.assertNotIn("\n", message)
        return message

    def test_fifo(self) -> None:
        """
        A FIFO in place of the key is refused at once, without opening it (which would wait for a writer).
        """
        os.unlink(self.path)
        os.mkfifo(self.path, 0o600)
        self.assertEqual(self.refused(), f"host key {self.path} is not a regular file")

    def test_damaged_key_not_echoed(self) -> None:
        """
        A key whose BEGIN line is missing is refused without quoting any of it (private key material).
        """
        with open(self.path, "rb") as f:
            lines = f.read().splitlines()
        with open(self.path, "wb") as f:
            f.write(b"\n".join(lines[1:]) + b"\n")
        message = self.refused()
        self.assertIn(f"cannot parse host key {self.path}", message)
        for line in lines[1:-1]:
            self.assertNotIn(line.decode()[:20], message)

    def test_readable_by_others(self) -> None:
        """
        A key of mode 0644 is refused with the chmod that fixes it.
        """
        os.chmod(self.path, 0o644)
        self.assertEqual(
            self.refused(),
            f"host key {self.path} is accessible by group or others (mode 0644); run: chmod 600 {self.path}",
        )
