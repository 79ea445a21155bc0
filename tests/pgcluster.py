"""
A throwaway PostgreSQL cluster for the tests: Debian's binaries on a temporary directory, listening on a UNIX
socket only, made on first use and removed when the test process exits.

As root (the CI machine), C{initdb} and C{pg_ctl} run as the C{postgres} user with C{runuser} (C{initdb} refuses
root) on a directory chowned to it.  C{fsync} is off except for crash tests, which make their own cluster.  If
C{SSHFINGER_TEST_PG} names an existing server (a libpq URL whose role may create databases), the tests use it
instead, each on databases of its own.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from urllib.parse import quote

from twisted.trial.unittest import SkipTest

#: The environment variable naming an existing server to test against.
ENVIRONMENT = "SSHFINGER_TEST_PG"
#: The role the throwaway cluster is made with (its superuser).
SUPERUSER = "sshfinger"


def postgres_bin() -> str | None:
    """
    Return the directory of the newest installed PostgreSQL's server binaries, or L{None}.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresCluster:
    """
    One PostgreSQL server for tests: either a throwaway cluster started here, or the server named by
    C{SSHFINGER_TEST_PG}.

    @ivar directory: the data directory (its socket lives there too), or L{None} for an existing server.
    """

    def __init__(self, fsync: bool = False, existing: str | None = None) -> None:
        """
        @param fsync: make a cluster that really syncs (crash tests).
        @param existing: the libpq URL of an existing server to use instead of starting one.
        """
        self.fsync = fsync
        self.existing = existing
        self.directory: str | None = None
        self._bin = postgres_bin()
        self._databases: list[str] = []

    # Starting and stopping.

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_owner(argv), capture_output=True, text=True, check=check, timeout=60, cwd="/"
        )

    def init(self) -> None:
        """
        Make the data directory with C{initdb} (trust authentication, superuser C{sshfinger}).

        @raise SkipTest: with the reason, if there is no PostgreSQL here or it cannot be initialised.
        """
        if self._bin is None:
            raise SkipTest("PostgreSQL is not installed (apt-get install postgresql, or set SSHFINGER_TEST_PG)")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise SkipTest("running as root and there is no 'postgres' user to run initdb as")
        self.directory = tempfile.mkdtemp(prefix="sshfinger-pg-")
        if os.geteuid() == 0:
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        os.chmod(self.directory, 0o755)
        data = os.path.join(self.directory, "data")
        result = self._run(
            [os.path.join(self._bin, "initdb"), "-D", data, "-A", "trust", "-U", SUPERUSER, "--no-sync",
             "-E", "UTF8", "--locale", "C.UTF-8"],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise SkipTest(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        """
        Start the server (and make the cluster first if needed); wait until it accepts connections.

        @raise SkipTest: if it cannot start.
        """
        if self.existing is not None:
            return
        if self.directory is None:
            self.init()
        assert self.directory is not None and self._bin is not None
        options = (
            f"-k {self.directory} -c listen_addresses='' -c fsync={'on' if self.fsync else 'off'}"
            f" -c synchronous_commit={'on' if self.fsync else 'off'} -c full_page_writes={'on' if self.fsync else 'off'}"
            " -c max_connections=200 -c shared_buffers=64MB"
        )
        result = self._run(
            [os.path.join(self._bin, "pg_ctl"), "-w", "-t", "60", "-D", self.data, "-l", self.log_path,
             "-o", options, "start"],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise SkipTest(f"PostgreSQL did not start: {result.stderr.strip()} {self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """
        Stop the server with C{pg_ctl -m MODE} (C{immediate} is a crash: no checkpoint).
        """
        if self.existing is not None or self.directory is None or self._bin is None:
            return
        self._run([os.path.join(self._bin, "pg_ctl"), "-w", "-D", self.data, "-m", mode, "stop"], check=False)

    def destroy(self) -> None:
        """
        Stop the server and remove its directory (or drop the databases made on an existing server).
        """
        if self.existing is not None:
            for name in self._databases:
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        if self.directory is not None:
            self.stop("immediate")
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    @property
    def data(self) -> str:
        """
        The data directory.
        """
        assert self.directory is not None
        return os.path.join(self.directory, "data")

    @property
    def log_path(self) -> str:
        """
        The server's log file.
        """
        assert self.directory is not None
        return os.path.join(self.directory, "server.log")

    def log_tail(self, lines: int = 20) -> str:
        """
        The end of the server's log, for failure messages.
        """
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    # Databases.

    def url(self, database: str = "postgres") -> str:
        """
        The libpq URL of C{database} on this server.
        """
        if self.existing is not None:
            base, _, query = self.existing.partition("?")
            prefix = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
            return f"{prefix}/{database}" + (f"?{query}" if query else "")
        assert self.directory is not None
        return f"postgresql:///{database}?host={quote(self.directory, safe='')}&user={SUPERUSER}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """
        Run one statement in autocommit mode and return its rows.
        """
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """
        Create a fresh, empty database and return its URL.
        """
        name = f"sshfinger_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return self.url(name)


_shared: PostgresCluster | None = None
_failure: str | None = None


def shared_cluster() -> PostgresCluster:
    """
    The one cluster the tests of this process share (fsync off), started on first use.

    @raise SkipTest: with a clear reason, if PostgreSQL is missing or cannot start (then every later call raises
        the same without trying again).
    """
    global _shared, _failure
    if _failure is not None:
        raise SkipTest(_failure)
    if _shared is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _failure = "psycopg is not installed (pip install '.[postgresql]', which 'make install' does)"
            raise SkipTest(_failure)
        cluster = PostgresCluster(existing=os.environ.get(ENVIRONMENT) or None)
        try:
            cluster.start()
        except SkipTest as e:
            _failure = str(e)
            cluster.destroy()
            raise
        atexit.register(cluster.destroy)
        _shared = cluster
    return _shared


def crash_cluster() -> PostgresCluster:
    """
    Start a cluster of its own with fsync on (for tests that crash the server); the caller destroys it.

    @raise SkipTest: if PostgreSQL is missing or cannot start, or only an existing server may be used.
    """
    if os.environ.get(ENVIRONMENT):
        raise SkipTest(f"crash tests need a throwaway cluster, and {ENVIRONMENT} names an existing server")
    cluster = PostgresCluster(fsync=True)
    try:
        cluster.start()
    except SkipTest:
        cluster.destroy()
        raise
    return cluster
