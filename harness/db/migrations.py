"""Versioned migrations through yoyo: apply, roll back, report.

The migration set is a list of directories applied in the order given; by default
the project's own ``migrations/``, shipped in the package. A DBA's candidate directory
layered after it (``--migrations migrations --migrations candidate/``) is applied on top.

Before a rollback, :meth:`Migrator.rollback_plan` rehearses it on a scratch database
rebuilt with the applied migrations and compares catalog fingerprints before and after
each step: every table and column the rollback would drop, with the rows it holds on the
real database. The command line refuses a rollback that would drop rows unless told.
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
from harness.db.connections import (
    check_dsn,
    connect,
    dbname_of,
    redact,
    scratch_database,
)
from harness.db.queries import fetch_all, scalar
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
        shown = str(path) if len(str(path)) <= 200 else str(path)[:197] + "..."
        try:
            if not path.is_dir():
                raise UsageError(f"migrations directory not found: {shown}")
            if not any(path.glob("*.sql")) and not any(path.glob("*.py")):
                raise UsageError(f"migrations directory holds no migrations: {shown}")
        except OSError as exc:
            raise UsageError(f"migrations directory {shown}: {exc.strerror or exc}") from exc
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
class Drop:
    """A table or column a rollback step drops, and the rows it holds now (for a
    column: the rows where it holds a value)."""

    migration: str
    kind: str  # "table" or "column"
    name: str  # as a fingerprint names it: email_jobs, marketplace_purchases.leads_marked_at
    rows: int

    def __str__(self) -> str:
        held = f"{self.rows} row(s)" if self.kind == "table" else f"a value in {self.rows} row(s)"
        return f"{self.kind} {self.name} ({held})"


@dataclass(frozen=True)
class RollbackPlan:
    """What rolling back ``migrations`` (newest first) would drop."""

    migrations: tuple[str, ...]
    drops: tuple[Drop, ...]

    @property
    def losses(self) -> tuple[Drop, ...]:
        """The drops that hold data."""
        return tuple(d for d in self.drops if d.rows > 0)

    def lines(self) -> list[str]:
        """The plan, one line per migration and one per drop."""
        out = []
        for mid in self.migrations:
            out.append(f"roll back {mid}")
            drops = [d for d in self.drops if d.migration == mid]
            out += [f"  drops {d}" for d in drops] or ["  drops no table or column"]
        return out

    def summary(self) -> str:
        if not self.drops:
            return "drops no table or column"
        return "drops " + "; ".join(f"{d} ({d.migration})" for d in self.drops)


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

    def check_unlocked(self) -> None:
        """MigrationLocked when a yoyo lock is held (a stale one, or a run under way)."""
        holder = self.lock_holder()
        if holder:
            raise MigrationLocked(self.locked_message(holder, stale=_is_stale(holder[0])))

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

    def rollback_plan(self, steps: int | None = 1) -> RollbackPlan:
        """Rehearse rolling back the last ``steps`` applied migrations (None: all) on a
        scratch database rebuilt with the applied migrations, and list every table and
        column each step drops, with the rows it holds on this database. Nothing here
        changes; the scratch database is dropped."""
        from harness.db.fingerprint import fingerprint

        todo = [m.id for m in list(self.backend.to_rollback(self.migrations))[:steps]]
        if not todo:
            return RollbackPlan((), ())
        applied = {s.id for s in self.status() if s.applied}
        drops: list[Drop] = []
        with contextlib.ExitStack() as stack:
            try:
                scratch = stack.enter_context(
                    scratch_database(self.dsn, prefix="harness_rollback_plan")
                )
            except (psycopg.Error, ConnectionFailed) as exc:
                raise MigrationError(
                    f"cannot rehearse the rollback on a scratch database ({_one_line(exc)}); "
                    "--accept-data-loss rolls back without the rehearsal"
                ) from exc
            rehearsal = stack.enter_context(Migrator(scratch, self.sources))
            for m in rehearsal.backend.to_apply(rehearsal.migrations):
                if m.id in applied:
                    rehearsal.backend.apply_one(m)
            by_id = {m.id: m for m in rehearsal.migrations}
            sconn = stack.enter_context(connect(scratch))
            target = stack.enter_context(connect(self.dsn))
            before = fingerprint(sconn)
            for mid in todo:
                try:
                    rehearsal.backend.rollback_one(by_id[mid])
                except Exception as exc:
                    raise MigrationError(
                        f"rollback of {mid} failed in the rehearsal: {_one_line(exc)}"
                    ) from exc
                after = fingerprint(sconn)
                drops += _dropped(mid, before, after, target)
                before = after
        return RollbackPlan(tuple(todo), tuple(drops))

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


def _dropped(
    migration: str, before: dict[str, Any], after: dict[str, Any], target: psycopg.Connection
) -> list[Drop]:
    """The tables (with data: not views) and the columns of surviving tables in
    ``before`` and not in ``after``, counted on ``target``."""
    from psycopg import sql

    data_kinds = ("table", "partitioned table")
    tables = {k: v for k, v in before["tables"].items() if v.get("kind") in data_kinds}
    out: list[Drop] = []
    for key in sorted(set(tables) - set(after["tables"])):
        rel = fetch_all(target, "migrations", "relation", {"key": key})
        rows = 0
        if rel:
            ident = sql.Identifier(rel[0]["schema"], rel[0]["name"])
            rows = _count(target, sql.SQL("SELECT count(*) FROM {}").format(ident))
        out.append(Drop(migration, "table", key, rows))
    for key in sorted(set(before["columns"]) - set(after["columns"])):
        table = max((t for t in after["tables"] if key.startswith(t + ".")), key=len, default=None)
        if table is None or table not in tables:
            continue  # the table goes too, or holds no data of its own
        column = key[len(table) + 1 :]
        rel = fetch_all(target, "migrations", "relation", {"key": table})
        col = fetch_all(target, "migrations", "column_of", {"table": table, "column": column})
        rows = 0
        if rel and col:
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
                sql.Identifier(rel[0]["schema"], rel[0]["name"]), sql.Identifier(col[0]["name"])
            )
            rows = _count(target, query)
        out.append(Drop(migration, "column", key, rows))
    return out


def _count(conn: psycopg.Connection, query: Any) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def pending_migrations(dsn: str, dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[str]:
    """The ids of the set's migrations not applied to ``dsn``, read without writing
    anything (yoyo's tables are not created when absent)."""
    sources = resolve_sources(dirs)
    ids = [m.id for m in read_migrations(*map(str, sources))]
    with connect(dsn) as conn:
        present = fetch_all(conn, "migrations", "yoyo_present")[0]["present"]
        done = (
            {r["migration_id"] for r in fetch_all(conn, "migrations", "applied_ids")}
            if present
            else set()
        )
    return [i for i in ids if i not in done]


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
    "Drop",
    "MigrationState",
    "Migrator",
    "RollbackPlan",
    "migrate",
    "pending_migrations",
    "project_migrations_dir",
    "resolve_sources",
    "yoyo_url",
]
