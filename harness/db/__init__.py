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
    dbname_of,
    drop_database,
    dsn_with_db,
    pool,
    redact,
    scratch_database,
    scratch_name,
    server_version,
)
from harness.db.queries import fetch_all, queries, query, scalar

__all__ = [
    "CONNECT_TIMEOUT",
    "check_dsn",
    "connect",
    "create_database",
    "dbname_of",
    "drop_database",
    "dsn_with_db",
    "fetch_all",
    "pool",
    "queries",
    "query",
    "redact",
    "scalar",
    "scratch_database",
    "scratch_name",
    "server_version",
]
