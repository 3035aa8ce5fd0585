"""The pytest plugin (entry point ``pytest11``): the harness's fixtures in a team's own
test suite, and scenario files as test items.

Fixtures:

``harness_server`` (session)
    a PostgreSQL server: ``--harness-dsn`` (an existing one, never stopped) or a throwaway
    one (``--harness-postgres``, embedded by default), stopped when the session ends.
``harness_db``
    a fresh database cloned from a template migrated once per session (the packaged
    migrations, or ``--harness-migrations DIR``, repeatable), dropped after the test.
``purchase_service``
    a :class:`~harness.money.service.PurchaseService` on a pool over ``harness_db``.
``harness_app_config``
    the :class:`~harness.drivers.serve.app.AppConfig` ``harness_client`` serves; override it
    in a conftest to change the secret, pool, rate limits or flow.
``harness_client``
    an ``httpx.Client`` on ``harness serve``'s application (uvicorn on loopback) over
    ``harness_db``; ``harness_client.token(workspace, user)`` signs a bearer token and
    ``harness_client.dsn`` is its database.

Scenario files: every ``*.toml`` in a directory named ``scenarios`` that has ``[[steps]]``
or ``[expect]`` (another tool's TOML there is left alone) is collected as one test item,
run on its own clone of the template like ``harness scenario run`` runs it; its
expectation mismatches and violations are the failure text. JUnit comes from pytest's own
``--junitxml``.

Nothing starts a server unless a fixture above or a scenario item is used. The option
names carry ``harness-`` so that they never clash with a suite's own (the harness's own
tests use ``--test-dsn`` and ``--postgres``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from harness import db
from harness.db import servers
from harness.db.migrations import Migrator
from harness.drivers.scenarios.format import Scenario, load_scenario
from harness.drivers.scenarios.runner import ScenarioResult, run_scenarios
from harness.errors import HarnessError

SCENARIO_DIR = "scenarios"
SECRET = "harness-pytest-plugin-" + "0" * 24  # a test secret: tokens never leave the test


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness: fixtures and scenario files")
    group.addoption(
        "--harness-dsn",
        default=None,
        help="an existing PostgreSQL server for the harness fixtures and scenario items "
        "(default: a throwaway one)",
    )
    group.addoption(
        "--harness-postgres",
        default=None,
        help="the throwaway server's provider: embedded (default), system, docker[:IMAGE]",
    )
    group.addoption(
        "--harness-migrations",
        action="append",
        default=None,
        metavar="DIR",
        help="migration directory, repeatable, in order (default the packaged migrations)",
    )


class HarnessSession:
    """The session's server and migrated template, made on first use."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._server: servers.Server | None = None
        self._template: str | None = None

    @property
    def server(self) -> servers.Server:
        if self._server is None:
            dsn = self.config.getoption("--harness-dsn")
            if dsn:
                self._server = servers.Server(dsn=dsn, provider="dsn")
            else:
                self._server = servers.start_server(
                    postgres=self.config.getoption("--harness-postgres")
                )
        return self._server

    @property
    def migrations(self) -> list[str] | None:
        dirs = self.config.getoption("--harness-migrations")
        return list(dirs) if dirs else None

    @property
    def template(self) -> str:
        """A database with the migrations applied, cloned by every ``harness_db``."""
        if self._template is None:
            name = db.scratch_name("harness_pytest_template")
            dsn = db.create_database(self.server.dsn, name)
            try:
                with Migrator(dsn, self.migrations) as m:
                    m.apply()
            except BaseException:
                db.drop_database(self.server.dsn, name)
                raise
            self._template = name
        return self._template

    def close(self) -> None:
        if self._server is None:
            return
        if self._template is not None:
            db.drop_database(self._server.dsn, self._template)
        self._server.stop()


_SESSION = pytest.StashKey[HarnessSession]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SESSION] = HarnessSession(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        session.close()


def _session(config: pytest.Config) -> HarnessSession:
    return config.stash[_SESSION]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def harness_server(pytestconfig: pytest.Config) -> servers.Server:
    """The session's PostgreSQL server (``.dsn`` is its maintenance database)."""
    return _session(pytestconfig).server


@pytest.fixture
def harness_db(pytestconfig: pytest.Config, harness_server: servers.Server) -> Iterator[str]:
    """DSN of a fresh, migrated database for this test alone."""
    name = db.scratch_name("harness_pytest")
    dsn = db.create_database(harness_server.dsn, name, _session(pytestconfig).template)
    try:
        yield dsn
    finally:
        db.drop_database(harness_server.dsn, name)


@pytest.fixture
def purchase_service(harness_db: str) -> Iterator[Any]:
    """The purchase service (HARNESS_PURCHASE_FLOW's flow) on a pool over harness_db."""
    from harness.money.service import PurchaseService

    pool = db.pool(harness_db, min_size=1, max_size=8)
    try:
        yield PurchaseService(pool)
    finally:
        pool.close()


@pytest.fixture
def harness_app_config(harness_db: str) -> Any:
    """What harness_client serves: override to change the secret, pool, limits or flow."""
    from harness.drivers.serve.app import AppConfig

    return AppConfig(dsn=harness_db, secret=SECRET)


class HarnessClient(httpx.Client):
    """An HTTP client on the application, with what a test needs to sign in."""

    def __init__(self, url: str, dsn: str, secret: str) -> None:
        super().__init__(base_url=url, timeout=60)
        self.url = url
        self.dsn = dsn
        self.secret = secret

    def token(self, workspace_id: UUID | str, user_id: UUID | str) -> str:
        from harness.drivers.serve import tokens

        return tokens.issue(self.secret, workspace_id, user_id)

    def auth_headers(self, workspace_id: UUID | str, user_id: UUID | str) -> dict[str, str]:
        """The Authorization header for this member."""
        return {"Authorization": f"Bearer {self.token(workspace_id, user_id)}"}


@pytest.fixture
def harness_client(harness_app_config: Any) -> Iterator[HarnessClient]:
    """An httpx client on harness serve's application (uvicorn on loopback)."""
    from harness.drivers.serve.server import running

    with running(harness_app_config) as url:
        with HarnessClient(url, harness_app_config.dsn, harness_app_config.secret) as client:
            yield client


# -- scenario files -----------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and SCENARIO_DIR in file_path.parent.parts:
        if not _meant_as_scenario(file_path):
            return None
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _meant_as_scenario(path: Path) -> bool:
    """Whether a TOML file in a ``scenarios`` directory is one of ours: the plugin is loaded
    in every pytest session where harness is installed, and a team's ``scenarios/`` may hold
    another tool's TOML. A file with ``[[steps]]`` or ``[expect]`` is a scenario (its
    mistakes are then collection errors), and so is one that is not valid TOML at all (it
    was meant to be one); valid TOML with neither is left alone."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    return "steps" in data or "expect" in data


class ScenarioFile(pytest.File):
    """A scenario file: one item, named after the scenario."""

    def collect(self) -> Iterator[pytest.Item]:
        scenario = load_scenario(self.path)  # a bad file is a collection error naming the key
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioFailed(Exception):
    """A scenario's expectations were not met."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.name)
        self.result = result


class ScenarioItem(pytest.Item):
    """Runs one scenario on its own clone of the session's template."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self) -> None:
        session = _session(self.config)
        (result,) = run_scenarios(session.server.dsn, [self.scenario], template=session.template)
        self.user_properties.append(("succeeded", result.succeeded))
        if not result.ok:
            raise ScenarioFailed(result)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, ScenarioFailed):
            r = excinfo.value.result
            lines = [f"scenario {r.name} ({r.file}, {r.flow} flow) did not meet its expectations:"]
            lines += [f"  mismatch: {m}" for m in r.mismatches]
            lines += [f"  violation {v['name']}: {v['detail']}" for v in r.violations]
            return "\n".join(lines)
        if isinstance(excinfo.value, HarnessError):
            return f"scenario {self.scenario.name} could not run: {excinfo.value.message}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.scenario.name}"


__all__ = [
    "HarnessClient",
    "ScenarioItem",
    "harness_app_config",
    "harness_client",
    "harness_db",
    "harness_server",
    "purchase_service",
]
