"""
The PostgreSQL backend's tuning constants, in one place.
"""

from __future__ import annotations

#: The schema version this code writes; databases of a newer version are refused.
SCHEMA_VERSION = 4

#: Old changes are pruned each time the head crosses a multiple of this.
PRUNE_EVERY = 1000

#: The advisory lock every write holds until it commits, so that sequence order is commit order (the migration
#: uses the next number).
WRITE_LOCK = 0x55_46_49_4E_47_45_52  # "SSHFINGER"-ish, any constant shared by every node

#: The channel writers NOTIFY with the new head (a hint: followers then read the change log).
NOTIFY_CHANNEL = "sshfinger_changes"

#: libpq parameters of every connection: keepalives find a half-open TCP connection within ~30 s, a connection
#: attempt gives up after 5 s, and the server sees who we are.
CONNECT_OPTIONS: dict[str, object] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "application_name": "sshfinger",
}

#: Connections the query pool may open (the store's writer thread uses one; the offline tool and feed reads more).
POOL_MAX = 4
#: Seconds a query waits for a working connection before the edit fails (the database is unreachable).
POOL_TIMEOUT = 3.0
#: The same while the change feed finds the database unreachable: an edit then fails at once.
UNREACHABLE_TIMEOUT = 0.5

#: Accounts fetched per round trip when a node loads the whole store.
LOAD_CHUNK = 50_000

#: Seconds between two reads of the feed without a notification (a safety net: NOTIFY is only a hint).
FOLLOW_INTERVAL = 2.0
LIVENESS_TIMEOUT = 5.0
#: Seconds before the first and the longest retry of a lost LISTEN connection.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 5.0

#: Seconds between two heartbeats of a node in the C{nodes} table.
HEARTBEAT_INTERVAL = 5.0
#: A node whose heartbeat is older than this many intervals is reported as silent.
SILENT_AFTER = 3
#: Changes a node may be behind the head before C{sshfinger nodes} warns.
LAG_WARNING = 100
