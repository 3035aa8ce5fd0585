"""Versioned migrations through yoyo: apply, roll back, report.

The migration set is a list of directories applied in the order given; by default
the project's own ``migrations/``, shipped in the package. A DBA's candidate directory
layered after it (``--migrations migrations --migrations candidate/``) is applied on top.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from harness import packaged
from harness.db.connections import check_dsn, connect, dbname_of, redact
from harness.db.queries import scalar
from harness.errors import ConnectionFailed, MigrationError, MigrationLocked, UsageError

# While migrating: never queue for long behind a lock a live application holds, and
# never let one statement run unbounded.
MIGRATION_LOCK_TIMEOUT = "5s"
MIGRATION_STATEMENT_TIMEOUT = "5min"
YOYO_TABLES = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")
BREAK_LOCK_HINT = "harness break-lock"


def project_migrations_dir() -> Path:
    """The project's own migrations, as the package ships them."""
    return packaged.folder("migrations")


def resolve_sources(dirs: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    paths = [Path(d) for d in dirs] if dirs else [project_migrations_dir()]
    for path in paths:
        if not path.is_dir():
            raise UsageError(f"migrations directory not found: {path}")
        if not any(path.glob("*.sql")) and not any(path.glob("*.py")):
            raise UsageError(f"migrations directory holds no migrations: {path}")
    return [p.resolve() for p in paths]


def yoyo_url(dsn: str) -> str:
    """A ``postgresql+psycopg://`` URL carrying every parameter of a psycopg DSN."""
    params = {k: str(v) for k, v in check_dsn(dsn).items() if v is not None}
    dbname = params.pop("dbname", "")
    options = params.pop("options", "")
    options = (
        f"{options} -c lock_timeout={MIGRATION_LOCK_TIMEOUT}"
        f" -c statement_timeout={MIGRATION_STATEMENT_TIMEOUT}"
    ).strip()
    params["options"] = options
    return f"postgresql+psycopg:///{quote(dbname)}?{urlencode(params)}"


@dataclass(frozen=True)
class MigrationState:
    """One migration and whether it is applied."""

    id: str
    source: str
    applied: bool


class Migrator:
    """yoyo's backend and migration list for one database and one migration set."""

    def __init__(self, dsn: str, dirs: Sequence[str | os.PathLike[str]] | None = None) -> None:
        self.dsn = dsn
        self.sources = resolve_sources(dirs)
        with connect(dsn):  # one clear line for a bad DSN or an unreachable server
            pass
        try:
            self.backend = get_backend(yoyo_url(dsn))
        except psycopg.OperationalError as exc:
            raise ConnectionFailed(f"cannot connect to {redact(dsn)}: {exc}") from exc
        self.migrations = read_migrations(*map(str, self.sources))
        ids = [m.id for m in self.migrations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise UsageError(f"migration ids appear in more than one directory: {dupes}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.backend.connection.close()

    def __enter__(self) -> Migrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locking ------------------------------------------------------------------

    def lock_holder(self) -> tuple[int, str] | None:
        """(pid, since) of a yoyo lock row, if one is present."""
        with connect(self.dsn) as conn:
            exists = scalar(conn, "SELECT to_regclass('yoyo_lock') IS NOT NULL")
            if not exists:
                return None
            row = conn.execute("SELECT pid, ctime::text FROM yoyo_lock LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    @contextlib.contextmanager
    def locked(self, timeout: float = 10) -> Iterator[None]:
        holder = self.lock_holder()
        if holder and _is_stale(holder[0]):
            raise MigrationLocked(self.locked_message(holder, stale=True))
        try:
            with self.backend.lock(timeout=timeout):
                yield
        except LockTimeout as exc:
            raise MigrationLocked(
                self.locked_message(self.lock_holder() or (0, "?"), stale=False)
            ) from exc

    def locked_message(self, holder: tuple[int, str], stale: bool) -> str:
        what = "a stale yoyo lock" if stale else "a yoyo lock"
        return (
            f"database {dbname_of(self.dsn)} is held by {what} (pid {holder[0]}, since "
            f"{holder[1]}); if no migration is running, break it with: {BREAK_LOCK_HINT} "
            f"--dsn '{redact(self.dsn)}'"
        )

    def break_lock(self) -> bool:
        held = self.lock_holder() is not None
        self.backend.break_lock()
        return held

    # -- operations ---------------------------------------------------------------

    def status(self) -> list[MigrationState]:
        return [
            MigrationState(m.id, str(Path(m.source_dir)), bool(self.backend.is_applied(m)))
            for m in self.migrations
        ]

    def pending(self) -> list[str]:
        return [m.id for m in self.backend.to_apply(self.migrations)]

    def apply(self, on_step: Callable[[str], None] | None = None) -> list[str]:
        """Apply every pending migration in order; returns their ids."""
        with self.locked():
            todo = list(self.backend.to_apply(self.migrations))
            return self._run(todo, self.backend.apply_one, "migration {} failed", on_step)

    def rollback(
        self, steps: int | None = 1, on_step: Callable[[str], None] | None = None
    ) -> list[str]:
        """Roll back the last ``steps`` applied migrations (None: all of them)."""
        with self.locked():
            todo = list(self.backend.to_rollback(self.migrations))[:steps]
            return self._run(todo, self.backend.rollback_one, "rollback of {} failed", on_step)

    @staticmethod
    def _run(
        todo: Sequence[Any],
        step: Callable[[Any], object],
        failure: str,
        on_step: Callable[[str], None] | None,
    ) -> list[str]:
        """Run ``step`` on each migration in order, each in its own transaction (yoyo's);
        the first failure stops the run and names the migration."""
        done: list[str] = []
        for migration in todo:
            if on_step:
                on_step(migration.id)
            try:
                step(migration)
            except Exception as exc:
                raise MigrationError(f"{failure.format(migration.id)}: {_one_line(exc)}") from exc
            done.append(migration.id)
        return done


def migrate(dsn: str, dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[str]:
    """Apply every pending migration of the set to ``dsn``."""
    with Migrator(dsn, dirs) as migrator:
        return migrator.apply()


def _is_stale(pid: int) -> bool:
    """A lock whose pid is not a live process here. Only trusted for our own host:
    yoyo records no host, so a pid that is alive may belong to another machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


__all__ = [
    "YOYO_TABLES",
    "MigrationState",
    "Migrator",
    "migrate",
    "project_migrations_dir",
    "resolve_sources",
    "yoyo_url",
]
