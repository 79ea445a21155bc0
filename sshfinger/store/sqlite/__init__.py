"""
The SQLite backend: one file shared by the server and the offline tool.

L{backend} (accounts, writes, the audit trail), L{feed} (the change feed over the C{changes} table), L{maintenance}
(backup, restore, integrity, size), L{rows} (columns and start-up loading), L{schema} (versioned SQL scripts),
L{files} (0600 files and the store lock).
"""

from sshfinger.store.sqlite.backend import SQLiteBackend
from sshfinger.store.sqlite.schema import SCHEMA_VERSION, migration_scripts, schema_script, split_statements

__all__ = ["SCHEMA_VERSION", "SQLiteBackend", "migration_scripts", "schema_script", "split_statements"]
