"""
The C{twistd sshfinger} command line and the service it builds.

Also used by C{sshfinger.tac}: C{makeService(Options-like mapping)} is the one place the services are put
together.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import Any

from twisted.application import strports
from twisted.application.service import IServiceCollection, MultiService
from twisted.cred import strcred
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.python import usage

from sshfinger.finger.accesslog import AccessLog
from sshfinger.finger.onaccept import AnsweringEndpoint
from sshfinger.finger.protocol import FingerFactory, FingerService
from sshfinger.model.account import LOGIN_RULE, is_valid_login
from sshfinger.ops.endpoints import with_backlog
from sshfinger.ops.reload import ReloadService
from sshfinger.ssh.checkers import BytesUsernameChecker, check_passwd_file
from sshfinger.ssh.hostkeys import HostKeyError, load_host_keys
from sshfinger.ssh.service import make_ssh_service
from sshfinger.store.service import check_store_spec, make_store

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
    "audit-keep": 100_000,
}

#: --auth types refused at startup, with the reason.
REFUSED_AUTH = {
    "anonymous": "anonymous logins would give anyone a shell; not supported",
    "unix": "system passwords are not supported (and need crypt/spwd, gone in Python 3.13); use file:PATH",
}


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
        ["store", None, DEFAULTS["store"], "User store: a SQLite file (created if missing) or 'memory'."],
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
            "audit-keep",
            None,
            DEFAULTS["audit-keep"],
            "Audit entries (changes, manhole input) the SQLite store keeps; older ones are pruned.",
            _positive(int, "audit-keep"),
        ],
        ["ssh", None, DEFAULTS["ssh"], "Endpoint the SSH service listens on (the same syntax as --finger)."],
        ["keys", None, DEFAULTS["keys"], "Directory of the SSH host keys (generated there on first start)."],
        ["hostname", None, None, "Host name shown in the shell prompt (default: this machine's name)."],
        ["json-log", None, None, "Also write every event (info and above) as JSON lines to this file."],
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
            "Write the one line per finger query to this file instead of the main log, in batches every 0.1 s "
            "(much cheaper on a busy server); SIGHUP reopens it.",
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
    ]

    optFlags = [
        ["no-list", None, "Refuse the empty query (the list of all users)."],
        ["ascii", None, "Send ASCII-only answers (for old finger clients); the default is UTF-8."],
        ["no-ssh", None, "Serve finger only."],
    ]

    def __init__(self) -> None:
        """
        Start with no admins and no passwd files.
        """
        super().__init__()
        self["admin"] = []
        self["passwd_files"] = []

    def opt_admin(self, login: str) -> None:
        """
        Make LOGIN an admin whatever the store says (repeatable).
        """
        if not is_valid_login(login):
            raise usage.UsageError(f"--admin: {LOGIN_RULE}")
        self["admin"].append(login.lower())

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

    def _check_endpoint(self, option: str) -> None:
        try:
            serverFromString(None, self[option])  # parses only; nothing listens yet
        except Exception as e:
            raise usage.UsageError(f"--{option}: invalid endpoint {self[option]!r}: {e}") from None

    def postOptions(self) -> None:
        """
        Check the endpoints and the store path; raise L{usage.UsageError} with one clear line.
        """
        self._check_endpoint("finger")
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
        try:
            self["host_keys"] = load_host_keys(self["keys"])
        except HostKeyError as e:
            raise usage.UsageError(f"--keys: {e}") from None


#: Net new container objects that start a young-generation garbage collection (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


class SSHFingerService(MultiService):
    """
    All of sshfinger's services.  A port that cannot be bound stops twistd with one line and status 1.

    Once started it lets the young generation of the garbage collector grow to L{GC_YOUNG_THRESHOLD} objects:
    the objects of a connection are freed by reference counting when it closes, but a burst of a hundred open
    connections would otherwise set off collections that walk all of them, several times a second under load
    (5-7 % of a finger query's CPU at 128 concurrent connections in C{bench/}).
    """

    def privilegedStartService(self) -> None:
        """
        Bind the endpoints (as root, if twistd runs as root).

        @raise SystemExit: if an endpoint cannot listen (port in use, no permission).
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"sshfinger: cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}") from None

    def startService(self) -> None:
        """
        Start every service, then raise the young generation's threshold (see the class docstring).
        """
        super().startService()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def makeService(config: Mapping[str, Any], reactor: Any = None) -> SSHFingerService:
    """
    Build the services: the store, then the finger endpoint.

    @param config: parsed L{Options} (or a mapping with the same keys, see L{DEFAULTS}).
    @param reactor: the reactor to use; the global one by default.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = {**DEFAULTS, **config}
    top = SSHFingerService()
    store_service = make_store(settings["store"], reactor, audit_keep=int(settings["audit-keep"]))
    store_service.setName("store")
    store_service.setServiceParent(top)
    if hasattr(store_service, "register_node"):  # a store shared by several nodes: register this one
        from sshfinger.store.postgresql.identity import node_identity

        store_service.register_node(*node_identity(settings))

    access_log = None
    if settings.get("access-log"):
        access_log = AccessLog(settings["access-log"], reactor)
        access_log.setName("access-log")
        access_log.setServiceParent(top)  # before the finger port: opened before it, closed after it

    finger = FingerService(store_service.store, reactor, allow_list=not settings["no-list"])
    factory = FingerFactory(
        finger,
        reactor,
        timeout=float(settings["finger-timeout"]),
        max_per_peer=int(settings["max-per-peer"]),
        ascii_only=bool(settings["ascii"]),
        query_log=access_log,
    )
    endpoint = strports.service(with_backlog(settings["finger"]), factory, reactor)
    endpoint.endpoint = AnsweringEndpoint(endpoint.endpoint)
    endpoint.setName("finger")
    endpoint.setServiceParent(top)

    reload = ReloadService(
        reactor,
        settings.get("passwd_files", []),
        settings.get("json-log"),
        settings.get("log-file"),
        access_log=access_log,
    )
    reload.setName("reload")
    reload.setServiceParent(top)

    if not settings["no-ssh"]:
        if "host_keys" not in settings:
            settings["host_keys"] = load_host_keys(settings["keys"])
        ssh, app = make_ssh_service(settings, store_service.store, finger, reactor)
        app.extra.update(services=top, reactor=reactor)
        ssh.setName("ssh")
        ssh.setServiceParent(top)
    assert IServiceCollection.providedBy(top)
    return top
