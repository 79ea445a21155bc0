"""
The SQLite store's schema scripts (C{sshfinger/store/schema/}) and the order they run in.
"""

from __future__ import annotations

import sqlite3

from sshfinger.model.errors import StoreError
from sshfinger.store import migrations

#: The schema version this code writes; files of a newer version are refused.
SCHEMA_VERSION = 5


def schema_script(name: str) -> str:
    """
    Read one SQL script shipped in C{sshfinger/store/schema/}, such as C{"v1.sql"}.
    """
    return migrations.schema_script("sshfinger.store", name)


def split_statements(script: str) -> list[str]:
    """
    Split an SQL script into statements, each ending at a line that completes it.

    The scripts run inside the caller's transaction, which L{sqlite3.Cursor.executescript} would commit, so they
    are run one statement at a time.  A statement must end with C{;} at the end of a line.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise ValueError(f"unterminated SQL statement: {leftover[0].strip()!r}")
    return statements


def migration_scripts(version: int | None) -> list[tuple[int, str]]:
    """
    List the scripts that bring a file from C{version} (L{None}: empty) to L{SCHEMA_VERSION}, as (version
    reached, script text) pairs, in the order to run them.
    """
    return migrations.migration_scripts("sshfinger.store", version, SCHEMA_VERSION)


def schema_version(connection: sqlite3.Connection, path: str) -> int | None:
    """
    Read the version of the database on C{connection} (L{None} for an empty one), reading only.

    @raise StoreError: if it is not an sshfinger database or its version table is damaged.
    """
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "version" not in tables:
        raise StoreError(f"{path} is not an sshfinger database (it has no version table)")
    rows = connection.execute("SELECT version FROM version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise StoreError(f"{path} has a damaged version table")
    return int(rows[0][0])


def migrate(connection: sqlite3.Connection, path: str) -> None:
    """
    Bring the database on C{connection} to L{SCHEMA_VERSION} in one transaction (nothing changes if a step fails).

    @raise StoreError: if it is not an sshfinger database, or was written by a newer version.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(connection, path)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}, newer than this sshfinger supports ({SCHEMA_VERSION}):"
                " upgrade sshfinger"
            )
        for target, script in migration_scripts(version):
            for statement in split_statements(script):
                connection.execute(statement)
            connection.execute("UPDATE version SET version = ?", (target,))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
