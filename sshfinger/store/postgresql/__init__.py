"""
The PostgreSQL store: several sshfinger nodes share one database and follow each other's changes.

C{--store postgresql://USER@HOST/DB} (any libpq URL; C{postgres://} too).  Needs the C{postgresql} extra
(C{pip install 'sshfinger[postgresql]'}: psycopg 3 and psycopg_pool): the backend registry imports this module the
first time such a store is named, and says which extra to install if the import fails.  Importing it registers
both schemes.
"""

from __future__ import annotations

import psycopg
import psycopg_pool  # noqa: F401  (the backend's pool: fail here, at registration, when it is missing)
from psycopg.conninfo import conninfo_to_dict

from sshfinger.store.interfaces import IStoreBackend
from sshfinger.store.registry import StoreOptions, register_backend

#: The URL schemes libpq accepts, which select this backend.
SCHEMES = ("postgresql", "postgres")


def check_url(url: str) -> str:
    """
    Check a libpq connection URL when options are parsed.

    @raise ValueError: with one line, if libpq cannot parse it.
    """
    try:
        conninfo_to_dict(url)
    except psycopg.Error as e:
        raise ValueError(f"not a valid PostgreSQL URL: {' '.join(str(e).split())}") from None
    return url


def open_postgresql(url: str, options: StoreOptions) -> IStoreBackend:
    """
    Make an unopened L{sshfinger.store.postgresql.backend.PostgreSQLBackend} (its C{feed} is the L{IChangeFeed}).
    The change log keeps C{options.audit_keep} changes and C{options.audit_max_bytes} bytes of them.
    """
    from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES
    from sshfinger.store.postgresql.backend import PostgreSQLBackend

    return PostgreSQLBackend(
        url,
        changes_keep=options.audit_keep or CHANGES_KEEP,
        changes_max_bytes=options.audit_max_bytes or CHANGES_MAX_BYTES,
        reactor=options.reactor,
    )


for _scheme in SCHEMES:
    register_backend(_scheme, open_postgresql, check_url)

__all__ = ["SCHEMES", "check_url", "open_postgresql"]
