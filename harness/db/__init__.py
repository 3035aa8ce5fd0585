"""The bottom layer: connections and named SQL, PostgreSQL servers, migrations, and the
catalog's fingerprint and lint. Nothing here knows about money.

``harness.db`` is the one database seam: everything above receives a connection or a pool
from here, and nothing else calls ``psycopg.connect``.
"""

from harness.db.connections import (
    CONNECT_TIMEOUT,
    check_dsn,
    connect,
    create_database,
    created_databases,
    dbname_of,
    drop_created,
    drop_database,
    dsn_with_db,
    pool,
    redact,
    remember_secret,
    scratch_database,
    scratch_name,
    scrub,
    server_version,
)
from harness.db.queries import fetch_all, queries, query, scalar

__all__ = [
    "CONNECT_TIMEOUT",
    "check_dsn",
    "connect",
    "create_database",
    "created_databases",
    "dbname_of",
    "drop_created",
    "drop_database",
    "dsn_with_db",
    "fetch_all",
    "pool",
    "queries",
    "query",
    "redact",
    "remember_secret",
    "scalar",
    "scratch_database",
    "scratch_name",
    "scrub",
    "server_version",
]
