"""Fixtures: one real PostgreSQL server per session, a migrated template database, and a
fresh clone of it for every test that asks for ``db``.

The server comes from ``--test-dsn``/``HARNESS_TEST_DSN`` (an existing server), else a
throwaway one from ``--postgres``/``HARNESS_POSTGRES`` (embedded by default, ``system``
for the machine's PostgreSQL, e.g. Debian's 15). Nothing is ever mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from harness import database, servers
from harness.migrations import Migrator

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption(
        "--test-dsn",
        default=os.environ.get("HARNESS_TEST_DSN"),
        help="run against this existing server (env HARNESS_TEST_DSN)",
    )
    group.addoption(
        "--postgres",
        default=os.environ.get("HARNESS_POSTGRES", "embedded"),
        help="throwaway server provider: embedded (default) or system (env HARNESS_POSTGRES)",
    )


_SERVER: servers.Server | None = None


def _server(config: pytest.Config) -> servers.Server:
    global _SERVER
    if _SERVER is None:
        dsn = config.getoption("--test-dsn")
        _SERVER = servers.start_server(dsn=dsn, postgres=None if dsn else
                                       config.getoption("--postgres"))
    return _SERVER


def pytest_report_header(config: pytest.Config) -> list[str]:
    srv = _server(config)
    return [f"postgresql: {database.server_version(srv.dsn)} via {srv.provider}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER is not None:
        _SERVER.stop()


@pytest.fixture(scope="session")
def pg_server(pytestconfig: pytest.Config) -> servers.Server:
    """The session's server."""
    return _server(pytestconfig)


@pytest.fixture(scope="session")
def admin_dsn(pg_server: servers.Server) -> str:
    """DSN of the server's maintenance database (for CREATE/DROP DATABASE)."""
    return pg_server.dsn


@pytest.fixture(scope="session")
def template_db(admin_dsn: str) -> Iterator[str]:
    """Name of a database with the project's migrations applied, cloned by ``db``."""
    name = database.scratch_name("harness_template")
    dsn = database.create_database(admin_dsn, name)
    with Migrator(dsn) as m:
        m.apply()
    yield name
    database.drop_database(admin_dsn, name)


@pytest.fixture
def clone_db(admin_dsn: str) -> Iterator[Callable[[str], str]]:
    """Factory: a new database cloned from the given template; all dropped afterwards."""
    made: list[str] = []

    def make(template: str | None = None) -> str:
        name = database.scratch_name("harness_test")
        made.append(name)
        return database.create_database(admin_dsn, name, template)

    yield make
    for name in made:
        database.drop_database(admin_dsn, name)


@pytest.fixture
def db(clone_db: Callable[[str], str], template_db: str) -> str:
    """DSN of a fresh, fully migrated database for this test alone."""
    return clone_db(template_db)


@pytest.fixture
def empty_db(clone_db: Callable[[str | None], str]) -> str:
    """DSN of a fresh database with no migrations applied."""
    return clone_db(None)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to ``db``."""
    with database.connect(db) as c:
        yield c


# -- data factories -------------------------------------------------------------------------


class World:
    """Builds workspaces, members, partners and leads directly in a test database."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def workspace(self, name: str | None = None, balance: str | None = None,
                  members: int = 1) -> tuple[uuid.UUID, list[uuid.UUID]]:
        name = name or f"ws-{uuid.uuid4().hex[:8]}"
        ws = self.conn.execute(
            "INSERT INTO workspaces (name) VALUES (%s) RETURNING id", (name,)
        ).fetchone()[0]
        users = []
        for i in range(members):
            uid = self.user(f"{name}-{i}")
            self.conn.execute(
                "INSERT INTO workspace_members (workspace_id, user_id) VALUES (%s, %s)",
                (ws, uid),
            )
            users.append(uid)
        if balance is not None:
            self.conn.execute("SELECT add_credits(%s, %s, 'test')", (ws, Decimal(balance)))
        return ws, users

    def user(self, name: str | None = None) -> uuid.UUID:
        name = name or uuid.uuid4().hex[:8]
        return self.conn.execute(
            "INSERT INTO users (email, full_name) VALUES (%s, %s) RETURNING id",
            (f"{name}-{uuid.uuid4().hex[:6]}@example.com", name),
        ).fetchone()[0]

    def partner(self, name: str | None = None, base: str = "0.30", bonus: str = "0.05",
                pass_rate: str = "0.97") -> uuid.UUID:
        return self.conn.execute(
            "INSERT INTO partners (name, base_commission_rate, bonus_commission_rate, "
            "verification_pass_rate) VALUES (%s, %s, %s, %s) RETURNING id",
            (name or f"p-{uuid.uuid4().hex[:8]}", Decimal(base), Decimal(bonus),
             Decimal(pass_rate)),
        ).fetchone()[0]

    def leads(self, count: int = 1, price: str = "1.00", max_sales: int | None = None,
              partner: uuid.UUID | None = None, for_sale: bool = True) -> list[uuid.UUID]:
        rows = self.conn.execute(
            "INSERT INTO leads (marketplace_price, max_sales, partner_id, for_sale) "
            "SELECT %s, %s, %s, %s FROM generate_series(1, %s) RETURNING id",
            (Decimal(price), max_sales, partner, for_sale, count),
        ).fetchall()
        return sorted(r[0] for r in rows)

    def balance(self, ws: uuid.UUID) -> Decimal | None:
        row = self.conn.execute(
            "SELECT balance FROM workspace_credits WHERE workspace_id = %s", (ws,)
        ).fetchone()
        return row[0] if row else None


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    return World(conn)


BUSINESS_TABLES = (
    "workspaces", "users", "workspace_members", "partners", "leads", "workspace_credits",
    "marketplace_purchases", "marketplace_purchase_items", "lead_reservations",
    "credit_ledger", "api_idempotency_keys", "email_jobs",
)


def snapshot(conn: psycopg.Connection) -> dict[str, list]:
    """Every row of every business table, to prove that nothing changed."""
    out = {}
    for table in BUSINESS_TABLES:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if exists:
            out[table] = sorted(
                map(str, conn.execute(
                    sql.SQL("SELECT t.*::text FROM {} t").format(sql.Identifier(table))
                ).fetchall())
            )
    return out
