"""
Tests for L{sshfinger.shell.commands}: every command, its permissions and its errors, without a terminal.
"""

from __future__ import annotations

import subprocess
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.service import FingerService
from sshfinger.model.account import MIN_PASSWORD_LENGTH, Account, Actor
from sshfinger.shell import commands
from sshfinger.shell.app import EditRate
from sshfinger.shell.commands import CommandError, Context, Interaction, Reply
from sshfinger.ssh.checkers import parse_authorized_key
from sshfinger.ssh.hostkeys import fingerprint
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend


def make_store(clock: Clock) -> CachedStore:
    """
    A memory store with an admin, two users and a hidden one.
    """
    store = CachedStore(
        MemoryBackend(
            [
                Account("root", real_name="Root", role="admin"),
                Account("alice", real_name="Alice Liddell", status="Reading"),
                Account("bob", real_name="Bob"),
                Account("ghost", hidden=True),
            ]
        ),
        clock.seconds,
    )
    store.open()
    return store


def ssh_keygen_line(directory: str, kind: str = "ed25519") -> str:
    """
    Generate a real public key with C{ssh-keygen} and return its line.
    """
    path = f"{directory}/k_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "me@laptop", "-f", path], check=True)
    with open(path + ".pub") as f:
        return f.read().strip()


class CommandTestCase(SynchronousTestCase):
    """
    Run commands as a chosen login against a memory store.
    """

    def setUp(self) -> None:
        """
        Build the store, the finger service and a password recorder.
        """
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = make_store(self.clock)
        self.finger = FingerService(self.store, self.clock)
        self.passwords: dict[str, str] = {}

    def context(
        self,
        login: str,
        interactive: bool = True,
        admins: frozenset[str] = frozenset(),
        edits: EditRate | None = None,
    ) -> Context:
        """
        A command context for C{login}.
        """

        def set_password(who: str, password: str) -> Deferred[None]:
            self.passwords[who] = password
            return succeed(None)

        return Context(
            store=self.store,
            finger=self.finger,
            login=login,
            actor=Actor(login, "shell", "127.0.0.1:5000"),
            admins=admins,
            set_password=set_password,
            parse_key=parse_authorized_key,
            fingerprint=fingerprint,
            interactive=interactive,
            edits=edits,
        )

    def run_as(self, login: str, line: str, **kwargs: Any) -> Reply | Interaction:
        """
        Run one command line and return its result.
        """
        return self.successResultOf(commands.run(self.context(login, **kwargs), commands.split(line)))

    def lines(self, login: str, line: str, **kwargs: Any) -> list[str]:
        """
        Run a command that must reply, and return its lines.
        """
        result = self.run_as(login, line, **kwargs)
        assert isinstance(result, Reply), result
        return result.lines

    def error(self, login: str, line: str, **kwargs: Any) -> str:
        """
        Run a command that must fail, and return its one-line error.
        """
        try:
            argv = commands.split(line)
        except CommandError as e:
            return str(e)
        failure = self.failureResultOf(commands.run(self.context(login, **kwargs), argv), CommandError)
        return failure.getErrorMessage()

    def finish(self, result: Reply | Interaction, text: str) -> Reply:
        """
        Answer an interaction and return the final reply.
        """
        assert isinstance(result, Interaction), result
        reply = self.successResultOf(Deferred.fromCoroutine(result.finish(text)))  # type: ignore[arg-type]
        assert isinstance(reply, Reply)
        return reply


class ReadCommandTests(CommandTestCase):
    """
    help, who, finger, whoami, log, clear, quit.
    """

    def test_help_lists_commands(self) -> None:
        """
        C{help} lists every command an admin may run; a user does not see admin-only ones.
        """
        admin_help = "\n".join(self.lines("root", "help"))
        for name in ("who", "finger", "status", "set", "plan", "add", "del", "hide", "key", "passwd", "log"):
            self.assertIn(f"  {name}", admin_help)
        user_help = "\n".join(self.lines("alice", "help"))
        self.assertNotIn("  add ", user_help)
        self.assertIn("  status", user_help)

    def test_help_command(self) -> None:
        """
        C{help CMD} explains one command; an unknown one is an error.
        """
        self.assertIn("set LOGIN [FIELD] VALUE...", self.lines("alice", "help set")[0])
        self.assertIn("no such command: frob", self.error("alice", "help frob"))

    def test_who_is_finger_listing(self) -> None:
        """
        C{who} shows what an empty finger query shows (hidden accounts left out).
        """
        expected = list(self.finger.listing())
        self.assertEqual(self.lines("alice", "who"), expected)
        self.assertNotIn("ghost", "\n".join(expected))
        self.assertEqual(self.lines("alice", "list"), expected)

    def test_finger_is_finger_answer(self) -> None:
        """
        C{finger LOGIN} and C{finger -l LOGIN} show exactly what finger answers.
        """
        self.assertEqual(self.lines("bob", "finger alice"), list(self.finger.user("alice", False)))
        self.assertEqual(self.lines("bob", "finger -l alice"), list(self.finger.user("alice", True)))
        self.assertIn("no such user", self.lines("bob", "finger ghost")[0])

    def test_whoami(self) -> None:
        """
        C{whoami} names the login, role and peer; C{--admin} logins are admins.
        """
        self.assertEqual(self.lines("alice", "whoami"), ["alice (user) from 127.0.0.1:5000"])
        self.assertEqual(self.lines("root", "whoami")[0], "root (admin) from 127.0.0.1:5000")
        self.assertIn("(admin)", self.lines("bob", "whoami", admins=frozenset({"bob"}))[0])

    def test_log(self) -> None:
        """
        C{log} shows recent changes; users see only their own, admins any login's.
        """
        self.lines("alice", "status Out")
        self.lines("root", "set bob status Away")
        admin_log = self.lines("root", "log 10")
        self.assertEqual(len(admin_log), 2)
        self.assertIn("alice/shell@127.0.0.1:5000 alice.status: 'Reading' -> 'Out'", admin_log[0])
        self.assertEqual(len(self.lines("root", "log bob")), 1)
        self.assertEqual(len(self.lines("alice", "log")), 1)
        self.assertIn("permission denied", self.error("alice", "log bob"))

    def test_log_newline_and_lifetime(self) -> None:
        """
        A plan's newline reads as one C{\\n} in C{log} (issue 18 #21), and a re-created login's user sees only
        the new account's changes while an admin sees the old account's too (issue 18 #4).
        """
        self.lines("root", "add carol Carol")
        self.finish(self.run_as("root", "plan carol"), "one\ntwo")
        self.assertIn("carol.plan: '' -> 'one\\ntwo'", self.lines("root", "log 1 carol")[0])
        self.lines("root", "del carol --yes")
        self.lines("root", "add carol Carol Two")
        self.assertNotIn("one", "\n".join(self.lines("carol", "log")))
        self.assertIn("one", "\n".join(self.lines("root", "log carol")))

    def test_quit_and_clear(self) -> None:
        """
        C{quit}, C{exit} end the session; C{clear} asks for a cleared screen.
        """
        for line in ("quit", "exit", "logout"):
            result = self.run_as("alice", line)
            self.assertTrue(isinstance(result, Reply) and result.exit)
        result = self.run_as("alice", "clear")
        self.assertTrue(isinstance(result, Reply) and result.clear)

    def test_unknown_and_unparsable(self) -> None:
        """
        An unknown command and unbalanced quotes are one-line errors.
        """
        self.assertEqual(self.error("alice", "frobnicate"), "unknown command: frobnicate (try 'help')")
        self.assertIn("cannot parse the line", self.error("alice", 'status "open'))


class EditCommandTests(CommandTestCase):
    """
    status, set, plan, add, del, hide, unhide and their permissions.
    """

    def test_status_own(self) -> None:
        """
        C{status TEXT} sets the caller's status, recorded with the shell actor.
        """
        self.lines("alice", "status In a meeting")
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual((alice.status, alice.updated_by), ("In a meeting", "alice"))
        self.assertEqual(self.lines("alice", "status"), ["status: In a meeting"])

    def test_set_with_and_without_field(self) -> None:
        """
        C{set LOGIN FIELD VALUE} sets a field; without a field name the rest is the status; quotes work.
        """
        self.lines("root", 'set alice name "Alice P. Liddell"')
        self.lines("root", "set alice In a meeting")
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual((alice.real_name, alice.status), ("Alice P. Liddell", "In a meeting"))

    def test_unknown_field_refused(self) -> None:
        """
        A word in the field position that is not a field is an error listing the fields, and nothing changes
        (issue 18, #13); the reply names a field as it was typed.
        """
        error = self.error("root", "set alice colr red")
        self.assertIn("unknown field 'colr'", error)
        self.assertIn("name, status, plan, office, phone, fediverse, hidden, role", error)
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual(alice.status, "Reading")
        self.assertEqual(self.lines("root", "set alice name Alice P."), ["name of alice set"])
        self.assertEqual(self.lines("root", "set alice Away"), ["status of alice set"])
        self.assertEqual(self.lines("root", "set alice 'away from desk'"), ["status of alice set"])
        self.assertIn("unknown field 'away'", self.error("root", "set alice away from desk"))

    def test_user_may_not_edit_others(self) -> None:
        """
        A user may not change another account, nor admin-only fields of their own.
        """
        self.assertEqual(
            self.error("alice", "set bob status Hacked"), "permission denied: you may only change your own account"
        )
        self.assertIn("only admins may change role", self.error("alice", "set alice role admin"))
        bob = self.store.peek("bob")
        assert bob is not None
        self.assertEqual(bob.status, "")
        self.lines("alice", "set alice name Alice")

    def test_set_errors(self) -> None:
        """
        Bad values and unknown accounts are one-line errors.
        """
        self.assertIn("no such user: nobody", self.error("root", "set nobody status x"))
        self.assertIn("not a yes/no value", self.error("root", "set alice hidden perhaps"))
        self.assertIn("longer than 200", self.error("root", "set alice status " + "x" * 300))
        self.assertIn("usage", self.error("root", "set alice"))

    def test_plan_interaction(self) -> None:
        """
        C{plan} asks for text; the answer becomes the plan.  An admin may edit another's plan, a user not.
        """
        reply = self.finish(self.run_as("alice", "plan"), "line one\nline two")
        self.assertIn("2 lines", reply.lines[0])
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual(alice.plan, "line one\nline two")
        self.finish(self.run_as("root", "plan bob"), "Bob's plan")
        self.assertIn("permission denied", self.error("alice", "plan bob"))

    def test_add_and_del(self) -> None:
        """
        Admins add and delete (after a yes); users may not.
        """
        self.assertEqual(self.lines("root", "add carol Carol Shaw"), ["created carol"])
        self.assertIn("only admins", self.error("alice", "add dave"))
        self.assertIn("invalid login", self.error("root", "add 9x"))
        self.assertEqual(self.finish(self.run_as("root", "del carol"), "n").lines, ["not deleted"])
        self.assertIsNotNone(self.store.peek("carol"))
        self.assertEqual(self.finish(self.run_as("root", "del carol"), "yes").lines, ["deleted carol"])
        self.assertIsNone(self.store.peek("carol"))

    def test_del_non_interactive(self) -> None:
        """
        Without a terminal C{del} needs C{--yes}.
        """
        self.assertIn("--yes", self.error("root", "del bob", interactive=False))
        self.assertEqual(self.lines("root", "del bob --yes", interactive=False), ["deleted bob"])

    def test_hide_unhide(self) -> None:
        """
        C{hide}/C{unhide} toggle finger visibility; users only for themselves.
        """
        self.lines("alice", "hide")
        self.assertIn("no such user", self.finger.user("alice", False)[0])
        self.lines("root", "unhide alice")
        self.assertIn("Alice Liddell", "\n".join(self.finger.user("alice", False)))
        self.assertIn("permission denied", self.error("alice", "hide bob"))


class KeyAndPasswdTests(CommandTestCase):
    """
    key add/list/del and passwd.
    """

    def test_key_cycle(self) -> None:
        """
        A real ssh-keygen key is added, listed with its fingerprint, refused twice, and deleted by number.
        """
        line = ssh_keygen_line(self.mktemp_dir())
        self.assertEqual(self.lines("alice", f"key add {line}"), ["key added to alice"])
        listing = self.lines("alice", "key list")
        key, _ = parse_authorized_key(line)
        self.assertIn(fingerprint(key), listing[0])
        self.assertIn("me@laptop", listing[0])
        self.assertIn("there already", self.error("alice", f"key add {line}"))
        self.assertEqual(self.lines("alice", "key del 1"), ["key removed from alice"])
        self.assertEqual(self.lines("alice", "key list"), ["alice has no keys"])

    def test_key_permissions_and_errors(self) -> None:
        """
        Users manage only their own keys; admins anyone's; garbage keys are refused with a reason.
        """
        line = ssh_keygen_line(self.mktemp_dir())
        self.assertIn("permission denied", self.error("alice", f"key add bob {line}"))
        self.assertEqual(self.lines("root", f"key add bob {line}"), ["key added to bob"])
        self.assertIn("only admins", self.error("alice", "key list bob"))
        self.assertIn("key add:", self.error("alice", "key add ssh-ed25519 notbase64"))
        self.assertIn("no key 7", self.error("root", "key del bob 7"))
        self.assertIn("usage", self.error("alice", "key frob"))

    def test_key_add_from_input(self) -> None:
        """
        C{key add} without a key line asks for the keys (in exec: standard input, C{key add < id.pub}): every
        key line is added at once, blank and comment lines skipped; a bad line is named and nothing is added.
        """
        first, second = ssh_keygen_line(self.mktemp_dir()), ssh_keygen_line(self.mktemp_dir(), "ecdsa")
        result = self.run_as("alice", "key add")
        assert isinstance(result, Interaction)
        self.assertEqual(result.kind, "text")
        failure = self.failureResultOf(
            Deferred.fromCoroutine(result.finish(f"{first}\nnot a key\n")), CommandError  # type: ignore[arg-type]
        )
        self.assertIn("key add: line 2:", failure.getErrorMessage())
        self.assertEqual(self.lines("alice", "key list"), ["alice has no keys"])
        reply = self.finish(self.run_as("alice", "key add"), f"# mine\n{first}\n\n{second}\n")
        self.assertEqual(reply.lines, ["2 keys added to alice"])
        self.assertEqual(len(self.lines("alice", "key list")), 2)
        self.assertIn("there already", self.error("alice", f"key add {first}"))
        self.assertIn("permission denied", self.error("alice", "key add bob"))

    def mktemp_dir(self) -> str:
        """
        A fresh directory.
        """
        import os

        path = self.mktemp()
        os.makedirs(path)
        return path

    def test_passwd(self) -> None:
        """
        C{passwd} asks for a secret and stores it for the caller only.
        """
        reply = self.finish(self.run_as("alice", "passwd"), "n3w-secret")
        self.assertEqual(reply.lines, ["password changed for alice"])
        self.assertEqual(self.passwords, {"alice": "n3w-secret"})
        self.assertIn("empty password", str(self.failureResultOf(
            Deferred.fromCoroutine(self.run_as("alice", "passwd").finish("")), CommandError  # type: ignore[union-attr,arg-type]
        ).value))

    def test_passwd_recorded_once(self) -> None:
        """
        C{passwd} records the change in the audit trail (never the password), unless the setter records it
        itself (the store's, with C{--auth store}): either way, once.
        """
        for recorded_by_setter in (False, True):
            context = self.context("alice")
            context.password_change_recorded = recorded_by_setter
            interaction = self.successResultOf(commands.run(context, ["passwd"]))
            self.finish(interaction, "n3w-secret-long")
        changes = [c for c in self.successResultOf(self.store.recent_changes(100)) if c.field == "password"]
        self.assertEqual([(c.action, c.new) for c in changes], [("passwd", None)])


class CompletionTests(CommandTestCase):
    """
    L{commands.complete}.
    """

    def test_command_names(self) -> None:
        """
        The first word completes to visible command names with their summaries.
        """
        start, found = commands.complete(self.context("alice"), "wh")
        self.assertEqual(start, 0)
        self.assertEqual([name for name, _ in found], ["who", "whoami"])
        self.assertEqual(commands.complete(self.context("alice"), "ad")[1], [])
        self.assertEqual([n for n, _ in commands.complete(self.context("root"), "ad")[1]], ["add"])

    def test_logins_and_fields(self) -> None:
        """
        Login arguments complete to logins (with real names); set's second argument to field names.
        """
        start, found = commands.complete(self.context("alice"), "finger al")
        self.assertEqual((start, found), (7, [("alice", "Alice Liddell")]))
        self.assertEqual([n for n, _ in commands.complete(self.context("root"), "set alice st")[1]], ["status"])
        self.assertEqual(commands.complete(self.context("root"), 'status "al')[1], [])


class EditRateTests(CommandTestCase):
    """
    Per-login edit budgets (issue 17, #8): a flood of edits from one login is throttled with a clear line.
    """

    def test_user_flood_throttled(self) -> None:
        """
        With 5 edits a minute, alice's sixth quick edit is refused, names the limit and changes nothing; a
        refill of one edit comes after 12 s.  Each login has its own budget.
        """
        edits = EditRate(self.clock, per_minute=5)
        for n in range(5):
            self.lines("alice", f"status edit {n}", edits=edits)
        error = self.error("alice", "status edit 5", edits=edits)
        self.assertIn("too many changes: at most 5 a minute; nothing changed", error)
        self.assertEqual(self.store.peek("alice").status, "edit 4")  # type: ignore[union-attr]
        self.assertIn("too many changes", self.error("alice", "hide", edits=edits))
        self.lines("bob", "status mine", edits=edits)
        self.clock.advance(12)
        self.lines("alice", "status edit 6", edits=edits)
        self.assertIn("too many changes", self.error("alice", "status edit 7", edits=edits))

    def test_admins_get_more(self) -> None:
        """
        An admin's budget is twenty times a user's: 100 quick edits at 5 a minute go through, the 101st not.
        """
        edits = EditRate(self.clock, per_minute=5)
        for n in range(100):
            self.lines("root", f"set bob status {n}", edits=edits)
        self.assertIn("at most 100 a minute", self.error("root", "add carol", edits=edits))
        self.assertIsNone(self.store.peek("carol"))

    def test_passwd_counts(self) -> None:
        """
        A password change spends the budget too (each costs a bcrypt hash).
        """
        edits = EditRate(self.clock, per_minute=1)
        self.finish(self.run_as("alice", "passwd", edits=edits), "a long enough password")
        failure = self.failureResultOf(
            Deferred.fromCoroutine(self.run_as("alice", "passwd", edits=edits).finish("another long password")),  # type: ignore[union-attr,arg-type]
            CommandError,
        )
        self.assertIn("too many changes", failure.getErrorMessage())
        self.assertEqual(self.passwords, {"alice": "a long enough password"})


class PasswdPolicyTests(CommandTestCase):
    """
    Password strength and the audit trail (issue 18, #17).
    """

    def test_short_password_refused(self) -> None:
        """
        A password shorter than the minimum is refused with the minimum named, and nothing is written.
        """
        result = self.run_as("alice", "passwd")
        failure = self.failureResultOf(Deferred.fromCoroutine(result.finish("x")), CommandError)  # type: ignore[union-attr,arg-type]
        self.assertIn(f"at least {MIN_PASSWORD_LENGTH} characters", failure.getErrorMessage())
        self.assertEqual(self.passwords, {})

    def test_change_audited_without_secret(self) -> None:
        """
        A password change is recorded in the audit trail (who, from where, whose) without the password, and
        C{log} shows it.
        """
        self.finish(self.run_as("alice", "passwd"), "correct horse battery")
        changes = self.successResultOf(self.store.recent_changes(10, "alice"))
        self.assertEqual([(c.action, c.login, c.actor.peer) for c in changes], [("passwd", "alice", "127.0.0.1:5000")])
        self.assertNotIn("horse", repr(changes))
        self.assertIn("alice/shell@127.0.0.1:5000 changed the password of alice", self.lines("alice", "log")[0])


class HiddenAccountTests(CommandTestCase):
    """
    Hidden accounts never leak to users who may not see them (issue 18, #5): C{ghost} is hidden.
    """

    def answer(self, login: str, line: str) -> str:
        """
        What a command line answers, error or output, as one string.
        """
        try:
            argv = commands.split(line)
        except CommandError as e:
            return f"error: {e}"
        d = commands.run(self.context(login), argv)
        result = self.successResultOf(d.addErrback(lambda f: f.trap(CommandError) and f"error: {f.value}"))
        if isinstance(result, str):
            return result
        if isinstance(result, Interaction):
            return f"asks: {result.prompt}"
        return "\n".join(result.lines)

    def test_errors_same_as_unknown(self) -> None:
        """
        For a user, every command naming the hidden C{ghost} answers exactly as for C{nosuchuser}.
        """
        templates = [
            "key list {}",
            "key add {} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK3Q",
            "key del {} 1",
            "set {} status x",
            "set {} colr x",
            "plan {}",
            "hide {}",
            "unhide {}",
            "log {}",
            "finger {}",
            "finger -l {}",
            "del {}",
        ]
        for template in templates:
            hidden = self.answer("alice", template.format("ghost"))
            unknown = self.answer("alice", template.format("nosuchuser"))
            self.assertEqual(hidden.replace("ghost", "X"), unknown.replace("nosuchuser", "X"), template)

    def test_admin_still_sees(self) -> None:
        """
        An admin is told the truth about a hidden account.
        """
        self.assertEqual(self.answer("root", "key list ghost"), "ghost has no keys")

    def test_completion_leaves_hidden_out(self) -> None:
        """
        Tab and C{?} never offer a hidden account to a user; an admin gets it, and a hidden user their own.
        """
        self.assertEqual(commands.complete(self.context("alice"), "finger gh")[1], [])
        names = [name for name, _ in commands.complete(self.context("alice"), "finger ")[1]]
        self.assertNotIn("ghost", names)
        self.assertIn("bob", names)
        self.assertEqual([n for n, _ in commands.complete(self.context("root"), "finger gh")[1]], ["ghost"])
        self.assertEqual([n for n, _ in commands.complete(self.context("ghost"), "finger gh")[1]], ["ghost"])
