"""
The PostgreSQL store: several sshfinger nodes share one database and follow each other's changes.

C{--store postgresql://USER@HOST/DB} (any libpq URL).  Needs the C{postgresql} extra
(C{pip install 'sshfinger[postgresql]'}: psycopg 3 and psycopg_pool); this module imports them only when a
backend is made, so the registry can name the scheme without them installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sshfinger.model.errors import StoreError

if TYPE_CHECKING:
    from sshfinger.store.postgresql.backend import PostgreSQLBackend

#: The URL schemes libpq accepts, which select this backend.
SCHEMES = ("postgresql", "postgres")


def is_postgresql_url(spec: str) -> bool:
    """
    Whether a C{--store} value names a PostgreSQL database.
    """
    return spec.split("://", 1)[0].lower() in SCHEMES and "://" in spec


def open_backend(url: str, **options: Any) -> PostgreSQLBackend:
    """
    Make an unopened L{PostgreSQLBackend} for C{url} (its C{feed} attribute is the L{IChangeFeed}).

    @param options: passed to L{PostgreSQLBackend} (C{changes_keep}, C{pool_timeout}, ...).
    @raise StoreError: with one line, if the C{postgresql} extra is not installed or the URL is not valid.
    """
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as e:
        raise StoreError(
            f"the PostgreSQL store needs the postgresql extra: pip install 'sshfinger[postgresql]' ({e})"
        ) from None
    from psycopg.conninfo import conninfo_to_dict

    from sshfinger.store.postgresql.backend import PostgreSQLBackend

    try:
        conninfo_to_dict(url)
    except psycopg.Error as e:
        raise StoreError(f"not a valid PostgreSQL URL: {' '.join(str(e).split())}") from None
    return PostgreSQLBackend(url, **options)


__all__ = ["SCHEMES", "is_postgresql_url", "open_backend"]
