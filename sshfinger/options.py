"""
The options of C{twistd sshfinger} (and of a C{.tac} file or a C{--config} TOML file, checked the same way):
every option's meaning, default and validation, and the one-line usage errors twistd prints.
"""


from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.cred import strcred
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from sshfinger import __version__
from sshfinger.finger import constants as finger_constants
from sshfinger.finger.forward import parse_forward
from sshfinger.model.account import LOGIN_RULE, is_valid_login
from sshfinger.model.peers import IPV6_PREFIX
from sshfinger.ops import config as config_file
from sshfinger.ops.endpoints import check_description
from sshfinger.shell.app import ADMIN_EDIT_FACTOR, EDIT_RATE
from sshfinger.ssh.admission import Startups
from sshfinger.ssh.checkers import BytesUsernameChecker, check_passwd_file
from sshfinger.ssh.hostkeys import HostKeyError, load_host_keys
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES
from sshfinger.store.service import check_store_spec
from sshfinger.web.limits import RATE_PER_SECOND
from sshfinger.web.service import rate_option

#: Defaults shared by the twistd plugin and the .tac file.
DEFAULTS: Mapping[str, Any] = {
    "finger": "tcp:79",
    "store": "sshfinger.db",
    "finger-timeout": 10.0,
    "max-per-peer": 20,
    "no-list": False,
    "ascii": False,
    "ssh": "tcp:2222",
    "keys": "keys",
    "no-ssh": False,
    "idle-timeout": 900.0,
    "login-grace": 60.0,
    "max-auth-failures": 6,
    "system-users": False,
    "system-users-interval": 300.0,
    "audit-keep": CHANGES_KEEP,
    "audit-max-bytes": CHANGES_MAX_BYTES,
    "max-finger-connections": finger_constants.MAX_CONNECTIONS,
    "ipv6-prefix": IPV6_PREFIX,
    "no-answer-on-accept": False,
    "max-startups": "10:30:100",
    "max-ssh-per-peer": 10,
    "min-password-length": 10,
    "edit-rate": EDIT_RATE,
}

#: --auth types refused at startup, with the reason.
REFUSED_AUTH = {
    "anonymous": "anonymous logins would give anyone a shell; not supported",
    "unix": "system passwords are not supported (and need crypt/spwd, gone in Python 3.13); use file:PATH",
}


#: What C{--help-auth} lists: the --auth types sshfinger accepts (not C{unix} or C{anonymous}, refused).
AUTH_HELP = (
    ("file:PATH", "a bcrypt passwd file of login:hash lines, as 'sshfinger passwd' writes it"),
    ("sshkey", "system users' ~/.ssh/authorized_keys"),
    ("memory:USER:PASSWORD[:USER:PASSWORD...]", "logins and plaintext passwords given on the command line (tests)"),
)


def _positive(kind: type, name: str) -> Any:
    def coerce(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"--{name} takes a number, not {value!r}") from None
        if number <= 0:
            raise ValueError(f"--{name} must be greater than zero")
        return number

    coerce.coerceDoc = "Must be greater than zero."  # type: ignore[attr-defined]
    return coerce


def _prefix_length(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"--ipv6-prefix takes a prefix length, not {value!r}") from None
    if not 1 <= number <= 128:
        raise ValueError("--ipv6-prefix must be between 1 and 128")
    return number


_prefix_length.coerceDoc = "Between 1 and 128."  # type: ignore[attr-defined]


def _startups(value: str) -> str:
    try:
        Startups.parse(value)
    except ValueError as e:
        raise ValueError(str(e)) from None
    return value


_startups.coerceDoc = "N or start:rate:full."  # type: ignore[attr-defined]


class Options(usage.Options, strcred.AuthOptionMixin):
    """
    Options of C{twistd sshfinger}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve RFC 1288 finger and an SSH admin shell from one user store. Endpoints use Twisted's endpoint "
        "syntax, e.g. tcp:79, tcp:1079:interface=127.0.0.1, unix:/run/finger.sock, systemd:domain=INET:index=0; "
        "tcp endpoints get a listen queue of 1024 unless they set backlog=. "
        "SSH logins: public keys stored in the user store always work; --auth file:PATH adds bcrypt passwords "
        "(written by 'sshfinger passwd'). A login needs an account in the store to get a shell."
    )
    supportedInterfaces = (IUsernamePassword, ISSHPrivateKey)

    optParameters = [
        [
            "finger",
            None,
            DEFAULTS["finger"],
            "Endpoint the finger service listens on (Twisted syntax: tcp:79:interface=ADDR, unix:PATH, "
            "systemd:domain=INET:index=0; haproxy:tcp:79 behind a proxy sending PROXY headers).",
        ],
        [
            "store",
            None,
            DEFAULTS["store"],
            "User store: a SQLite file path or sqlite:PATH (created 0600 if missing), memory:, or a "
            "postgresql:// URL.",
        ],
        ["node", None, None, "This node's name in a shared store's registry (default: host name and SSH port)."],
        [
            "finger-timeout",
            None,
            DEFAULTS["finger-timeout"],
            "Seconds a finger client has to send its query, and again to read the answer (checked every second).",
            _positive(float, "finger-timeout"),
        ],
        [
            "max-per-peer",
            None,
            DEFAULTS["max-per-peer"],
            "Most concurrent finger connections from one address.",
            _positive(int, "max-per-peer"),
        ],
        [
            "max-finger-connections",
            None,
            DEFAULTS["max-finger-connections"],
            "Most concurrent finger connections in all; past it the oldest open one is closed to make room.",
            _positive(int, "max-finger-connections"),
        ],
        [
            "ipv6-prefix",
            None,
            DEFAULTS["ipv6-prefix"],
            "IPv6 clients are one address per network of this prefix length, for per-address limits (1-128).",
            _prefix_length,
        ],
        [
            "audit-keep",
            None,
            DEFAULTS["audit-keep"],
            "Audit entries (changes, manhole input) the store keeps, exactly; older ones are pruned (recorded in "
            "the store: the sshfinger tool keeps to it too).",
            _positive(int, "audit-keep"),
        ],
        [
            "audit-max-bytes",
            None,
            DEFAULTS["audit-max-bytes"],
            "Bytes of audit entries the store keeps (the newest entry always stays); older ones are pruned.",
            _positive(int, "audit-max-bytes"),
        ],
        ["ssh", None, DEFAULTS["ssh"], "Endpoint the SSH service listens on (the same syntax as --finger)."],
        ["keys", None, DEFAULTS["keys"], "Directory of the SSH host keys (generated there on first start)."],
        ["hostname", None, None, "Host name shown in the shell prompt (default: this machine's name)."],
        [
            "web",
            None,
            None,
            "Serve the web face (pages, JSON, WebFinger for acct:LOGIN@HOSTNAME, live events) on this endpoint "
            "(tcp:8079, ssl:443:privateKey=KEY:certKey=CERT); off by default.",
        ],
        ["metrics", None, None, "Serve /metrics, /healthz and /readyz on this endpoint (an admin interface)."],
        [
            "web-rate",
            None,
            RATE_PER_SECOND,
            "Requests per second one address may make to the web face (bursts of twice that); 0 turns the limit "
            "off (behind a proxy that hides client addresses).",
            rate_option,
        ],
        [
            "json-log",
            None,
            None,
            "Also write every event (info and above) to this file as JSON Lines: one object per line with time, "
            "level, namespace, message and the event's own fields; SIGHUP reopens it.",
        ],
        [
            "log-file",
            None,
            None,
            "Also write the log as text to this file (info and above, Conch's own only from warnings up, as "
            "twistd --logger sshfinger.ops.logs.observer writes it); SIGHUP reopens it.",
        ],
        [
            "access-log",
            None,
            None,
            "Write the one line per finger query to this file (in batches every 0.1 s) instead of the main log "
            "(where they are one event per reactor turn); SIGHUP reopens it.",
        ],
        [
            "idle-timeout",
            None,
            DEFAULTS["idle-timeout"],
            "Seconds an SSH shell may stay idle before it is closed.",
            _positive(float, "idle-timeout"),
        ],
        [
            "login-grace",
            None,
            DEFAULTS["login-grace"],
            "Seconds an SSH client has to authenticate.",
            _positive(float, "login-grace"),
        ],
        [
            "max-auth-failures",
            None,
            DEFAULTS["max-auth-failures"],
            "Failed SSH authentication attempts before the connection is cut.",
            _positive(int, "max-auth-failures"),
        ],
        [
            "system-users-interval",
            None,
            DEFAULTS["system-users-interval"],
            "Seconds between two imports of the system users (with --system-users).",
            _positive(float, "system-users-interval"),
        ],
        [
            "max-startups",
            None,
            DEFAULTS["max-startups"],
            "Unauthenticated SSH connections in all, as OpenSSH's MaxStartups: N, or start:rate:full (from start "
            "on, a new one is refused with probability rate %, rising to 100 % at full).",
            _startups,
        ],
        [
            "max-ssh-per-peer",
            None,
            DEFAULTS["max-ssh-per-peer"],
            "Most concurrent SSH connections from one address (an IPv6 client's --ipv6-prefix network).",
            _positive(int, "max-ssh-per-peer"),
        ],
        [
            "min-password-length",
            None,
            DEFAULTS["min-password-length"],
            "Shortest password the shell's passwd command accepts.",
            _positive(int, "min-password-length"),
        ],
        [
            "edit-rate",
            None,
            DEFAULTS["edit-rate"],
            "Changes (edits, password changes) one login may make per minute over SSH, with a minute's worth at "
            f"once; admins may make {ADMIN_EDIT_FACTOR:g} times as many.",
            _positive(float, "edit-rate"),
        ],
    ]

    optFlags = [
        ["no-list", None, "Refuse the empty query (the list of all users)."],
        ["ascii", None, "Send ASCII-only answers (for old finger clients); the default is UTF-8."],
        ["no-ssh", None, "Serve finger only."],
        [
            "system-users",
            None,
            "Serve the system users (UID_MIN-UID_MAX of /etc/login.defs) with their GECOS name, ~/.project, ~/.plan "
            "and ~/.pgpkey, as classic fingerd does (~/.nofinger hides a user); re-read every "
            "--system-users-interval seconds, keeping fields edited over SSH.",
        ],
        ["exact", None, "A finger query matches logins only, not words of real names as well."],
        [
            "no-answer-on-accept",
            None,
            "Do not answer a finger query on the accepted socket (the fast path); always use Twisted's transport.",
        ],
    ]

    #: Check values only: skip what needs the host (host keys are neither loaded nor generated).
    check_only = False

    def __init__(self) -> None:
        """
        Start with no admins and no passwd files.
        """
        super().__init__()
        self["admin"] = []
        self["passwd_files"] = []
        self["config"] = None
        self["forward"] = {}
        for name, doc in self.docs.items():  # a docstring's line breaks and indentation are not --help's
            self.docs[name] = " ".join(doc.split())

    def opt_config(self, path: str) -> None:
        """
        Read options from this TOML file first (keys are the long option names: finger = "tcp:79",
        admin = ["root"], no-list = true); options on the command line override it.
        """
        self["config"] = path

    def opt_version(self) -> None:
        """
        Print sshfinger's version (and Twisted's) and exit.
        """
        from twisted import copyright

        print(f"sshfinger {__version__} (Twisted {copyright.version})")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options} (the command line by default) after the arguments of the C{--config} file, if any.

        @raise usage.UsageError: with one line; about a value from the file, naming the file and the key.
        """
        args = list(sys.argv[1:] if options is None else options)
        path = config_file.config_path(self, args)
        if path is None:
            super().parseOptions(args)
            return
        given = config_file.file_arguments(self, path, args, _ValueCheck)
        try:
            super().parseOptions(given.arguments + args)
        except usage.UsageError as e:
            raise config_file.name_the_file(e, given) from None

    def opt_admin(self, login: str) -> None:
        """
        Make LOGIN an admin whatever the store says (repeatable).
        """
        if not is_valid_login(login):
            raise usage.UsageError(f"--admin: {LOGIN_RULE}")
        self["admin"].append(login.lower())

    def opt_help_auth(self) -> None:
        """
        Show the authentication sources --auth accepts.
        """
        self.authOutput.write("Usage: --auth AuthType[:ArgString] (repeatable; public keys in the store always work)\n")
        self.authOutput.write("\n")
        width = max(len(kind) for kind, _ in AUTH_HELP)
        for kind, text in AUTH_HELP:
            self.authOutput.write(f"  {kind:<{width}}  {text}\n")
        self.authOutput.write("\n")
        raise SystemExit(0)

    def opt_auth(self, description: str) -> None:
        """
        Add an SSH authentication source (repeatable): file:PATH (bcrypt passwd file), store (bcrypt hashes kept
        with the accounts in a PostgreSQL store), sshkey (system users' ~/.ssh/authorized_keys),
        memory:USER:PASSWORD[:...]. Public keys in the store always work.
        """
        kind, _, argument = description.partition(":")
        if kind == "store":  # bcrypt hashes kept with the accounts (needs a store that keeps them: PostgreSQL)
            self["auth-store"] = True
            return
        if kind in REFUSED_AUTH:
            raise usage.UsageError(f"--auth {kind}: {REFUSED_AUTH[kind]}")
        if kind == "file":
            try:
                check_passwd_file(argument)
            except ValueError as e:
                raise usage.UsageError(f"--auth file: {e}") from None
            self["passwd_files"].append(argument)
            return
        super().opt_auth(description)
        if kind == "memory":
            self["credCheckers"][-1] = BytesUsernameChecker(self["credCheckers"][-1])

    opt_a = opt_auth

    def opt_forward(self, target: str) -> None:
        """
        Forward finger queries for user@HOST to HOST (port 79, or HOST:PORT; [ADDR]:PORT for IPv6), one hop
        (repeatable); user@host queries to any other host are refused.
        """
        try:
            host, port = parse_forward(target)
        except ValueError as e:
            raise usage.UsageError(f"--forward: {e}") from None
        self["forward"][host] = port

    def _check_endpoint(self, option: str) -> None:
        if self.check_only and self[option].startswith("systemd:"):
            return  # its sockets exist only in the process systemd starts
        try:
            serverFromString(None, self[option])  # parses only; nothing listens yet
            check_description(self[option])
        except Exception as e:
            raise usage.UsageError(f"--{option}: invalid endpoint {self[option]!r}: {e}") from None

    def postOptions(self) -> None:
        """
        Check the endpoints and the store path; raise L{usage.UsageError} with one clear line.
        """
        self._check_endpoint("finger")
        for option in ("web", "metrics"):
            if self[option]:
                self._check_endpoint(option)
        try:
            self["store"] = check_store_spec(self["store"])
        except ValueError as e:
            raise usage.UsageError(f"--store: {e}") from None
        for option in ("json-log", "log-file", "access-log"):
            if self[option] and not os.path.isdir(os.path.dirname(os.path.abspath(self[option]))):
                raise usage.UsageError(f"--{option}: directory of {self[option]!r} does not exist")
        if self.get("auth-store") and not self["store"].startswith(("postgresql://", "postgres://")):
            raise usage.UsageError("--auth store: needs a store that keeps passwords (--store postgresql://...)")
        if self["no-ssh"]:
            return
        self._check_endpoint("ssh")
        if self.check_only:
            return
        try:
            self["host_keys"] = load_host_keys(self["keys"])
        except HostKeyError as e:
            raise usage.UsageError(f"--keys: {e}") from None


class _ValueCheck(Options):
    """
    Checks option values one by one (for L{config_file.file_arguments}): the coercions and C{opt_} methods,
    without C{postOptions}.
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options} only.
        """
        usage.Options.parseOptions(self, options)

    def postOptions(self) -> None:
        """
        Nothing: the whole configuration is checked by L{Options.postOptions}.
        """


#: The line after a usage error, instead of twistd's whole usage.
SEE_HELP = "see twistd sshfinger --help"


class TwistdOptions(Options):
    """
    L{Options} as twistd (through the plugin) and C{sshfinger.tac} parse them: a usage error ends the process
    with status 1 and two lines, the problem and L{SEE_HELP}, rather than twistd's usage followed by the problem.
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse, turning a L{usage.UsageError} into L{SystemExit} (twistd lets it through and prints it).
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            message = str(e).removeprefix("Parameter type enforcement failed: ")
            raise SystemExit(f"twistd sshfinger: {message}\n{SEE_HELP}") from None
