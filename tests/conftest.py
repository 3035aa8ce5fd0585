"""Fixtures: one real PostgreSQL server per session, a migrated template database, and a
fresh clone of it for every test that asks for ``db``.

The server comes from ``--test-dsn``/``HARNESS_TEST_DSN`` (an existing server), else a
throwaway one from ``--postgres``/``HARNESS_POSTGRES`` (embedded by default, ``system``
for the machine's PostgreSQL, e.g. Debian's 15). Nothing is ever mocked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from harness import db as database
from harness.db import servers
from harness.db.migrations import Migrator
from harness.testing import World, snapshot

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
        _SERVER = servers.start_server(
            dsn=dsn, postgres=None if dsn else config.getoption("--postgres")
        )
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


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    """Builds workspaces, members, partners and leads in ``db`` (harness.testing)."""
    return World(conn)


__all__ = ["ROOT", "World", "snapshot"]
