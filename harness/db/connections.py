"""The one database seam: connections, pools, scratch databases, named SQL.

Everything else receives a connection or a pool from here; nothing else calls
``psycopg.connect``. Driver errors that mean "could not reach the database" become
:class:`~harness.errors.ConnectionFailed` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from harness.db.queries import scalar
from harness.errors import ConnectionFailed, UsageError

CONNECT_TIMEOUT = 10


def check_dsn(dsn: str) -> dict[str, Any]:
    """Parse a DSN (URL or key=value); one clear error when it is not one."""
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"not a valid DSN {redact(dsn)!r}: {exc}") from exc


def redact(dsn: str) -> str:
    """The DSN with any password replaced, for messages and reports."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)


def dsn_with_db(dsn: str, dbname: str) -> str:
    params = check_dsn(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def dbname_of(dsn: str) -> str:
    return check_dsn(dsn).get("dbname") or check_dsn(dsn).get("user") or "postgres"


def connect(dsn: str, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection:
    """A connection, or ConnectionFailed with the server's reason in one line."""
    check_dsn(dsn)
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise ConnectionFailed(f"cannot connect to {redact(dsn)}: {reason}") from exc


def pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> ConnectionPool:
    """An open pool; connection failures surface as ConnectionFailed at first use."""
    check_dsn(dsn)
    p = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, **kwargs},
        name="harness",
    )
    try:
        p.open(wait=True, timeout=CONNECT_TIMEOUT)
    except PoolTimeout as exc:
        p.close()
        with connect(dsn):  # raises ConnectionFailed with the real reason
            pass
        raise ConnectionFailed(f"cannot open a pool on {redact(dsn)}") from exc
    return p


# -- scratch databases -----------------------------------------------------------------


def scratch_name(prefix: str = "harness") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE name [TEMPLATE t]; returns the new database's DSN."""
    with connect(admin_dsn) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        conn.execute(query)
    return dsn_with_db(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with connect(admin_dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def scratch_database(
    admin_dsn: str, *, prefix: str = "harness", template: str | None = None, keep: bool = False
) -> Iterator[str]:
    """A new database on the server for the block, dropped afterwards unless ``keep``."""
    name = scratch_name(prefix)
    dsn = create_database(admin_dsn, name, template)
    try:
        yield dsn
    finally:
        if not keep:
            drop_database(admin_dsn, name)


def server_version(dsn: str) -> str:
    with connect(dsn) as conn:
        return str(scalar(conn, "SHOW server_version"))
