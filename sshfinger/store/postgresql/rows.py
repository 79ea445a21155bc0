"""
The PostgreSQL store's rows and scripts: the SQL the backend and the feed share, rows to and from L{Account}s and
L{Change}s, the versioned schema scripts, and connection URLs made safe to show.
"""

from __future__ import annotations

from sys import intern

from sshfinger.model.account import Account, Actor, Change
from sshfinger.store import migrations
from sshfinger.store.postgresql.tuning import SCHEMA_VERSION

ACCOUNT_COLUMNS = (
    "login", "real_name", "status", "plan", "office", "phone", "hidden", "role", "keys", "updated_at", "updated_by",
    "fediverse", "plan_signature",
)  # fmt: skip
SELECT_ACCOUNT = f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM accounts"
#: Accounts that set nothing but their name, status and stamp load as L{PlainAccount} rows.
PLAIN = (
    "plan = '' AND office = '' AND phone = '' AND NOT hidden AND role = 'user' AND keys = '{}' AND fediverse = ''"
    " AND plan_signature = ''"
)
UPSERT_ACCOUNT = (
    f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ACCOUNT_COLUMNS))})"
    f" ON CONFLICT (login) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in ACCOUNT_COLUMNS[1:])}"
)
CHANGE_COLUMNS = "seq, at, actor_login, actor_channel, actor_peer, login, action, field, old, new"
#: Take the next sequence numbers, append the changes (given as one array per column, with the bytes each counts
#: against C{--audit-max-bytes}) and NOTIFY the new head; return the head and the change log's bytes.
LOG_CHANGES = (
    "WITH next AS (UPDATE feed SET head = head + %s, bytes = bytes + %s RETURNING head, bytes),"
    f" logged AS (INSERT INTO change_log ({CHANGE_COLUMNS}, size)"
    "  SELECT next.head - %s + t.n, t.at, t.actor_login, t.actor_channel, t.actor_peer, t.login, t.action,"
    "   t.field, t.old, t.new, t.size"
    "  FROM next, unnest(%s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    "   %s::text[], %s::text[], %s::int8[]) WITH ORDINALITY"
    "   AS t(at, actor_login, actor_channel, actor_peer, login, action, field, old, new, size, n))"
    " SELECT head, bytes, pg_notify(%s, head::text) FROM next"
)
#: Drop the changes up to a sequence number, and take their bytes off the feed's count.
PRUNE_CHANGES = (
    "WITH gone AS (DELETE FROM change_log WHERE seq <= %s RETURNING size)"
    " UPDATE feed SET pruned_through = greatest(pruned_through, %s),"
    "  bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)"
)


def migration_scripts(version: int | None) -> list[tuple[int, str]]:
    """
    List the scripts that bring a database from C{version} (L{None}: empty) to L{SCHEMA_VERSION}, as (version
    reached, script) pairs: C{v1.sql}, then every C{upgrade-to-vN.sql}.
    """
    return migrations.migration_scripts("sshfinger.store.postgresql", version, SCHEMA_VERSION)


def account_from_row(row: tuple) -> Account:
    """
    Build an L{Account} from the columns of L{ACCOUNT_COLUMNS}.
    """
    login, real_name, status, plan, office, phone, hidden, role, keys, updated_at, updated_by, fediverse, sig = row
    return Account(
        login, real_name, status, plan, office, phone, bool(hidden), intern(role), tuple(keys), updated_at,
        intern(updated_by), fediverse, sig,
    )  # fmt: skip


def account_values(account: Account) -> tuple:
    return (
        account.login, account.real_name, account.status, account.plan, account.office, account.phone,
        account.hidden, account.role, list(account.keys), account.updated_at, account.updated_by, account.fediverse,
        account.plan_signature,
    )  # fmt: skip


def change_from_row(row: tuple) -> Change:
    """
    Build a L{Change} from the C{change_log} columns of L{CHANGE_COLUMNS}.
    """
    _seq, at, actor_login, actor_channel, actor_peer, login, action, field, old, new = row
    return Change(at, Actor(actor_login, actor_channel, actor_peer), login, action, field, old, new)


__all__ = [
    "ACCOUNT_COLUMNS", "CHANGE_COLUMNS", "LOG_CHANGES", "PLAIN", "PRUNE_CHANGES", "SELECT_ACCOUNT", "UPSERT_ACCOUNT",
    "account_from_row",
    "account_values", "change_from_row", "migration_scripts",
]  # fmt: skip
