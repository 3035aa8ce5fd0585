"""``harness migrate | rollback | status | break-lock``, ``harness db start | stop``,
``harness schema fingerprint | diff`` and ``harness lint``: the migration set and the
server it lands on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from harness import db
from harness.cli.common import (
    NoSettings,
    Target,
    add,
    command,
    database,
    group,
    note,
    read_state,
    say,
)
from harness.db import servers
from harness.db.fingerprint import diff, digest, fingerprint_dsn, render
from harness.db.lint import lint
from harness.db.migrations import BREAK_LOCK_HINT, Migrator
from harness.errors import MigrationError
from harness.values import whole


@dataclass(frozen=True)
class RollbackSettings(Target):
    steps: int = 1
    all: bool = False
    dry_run: bool = False
    accept_data_loss: bool = False


@dataclass(frozen=True)
class StatusSettings(Target):
    json: bool = False


@dataclass(frozen=True)
class DbStartSettings:
    postgres: str | None = None


@dataclass(frozen=True)
class FingerprintSettings(Target):
    json: bool = False
    bodies: bool = False
    build: bool = False


@dataclass(frozen=True)
class DiffSettings:
    before: str = ""
    after: str = ""


@dataclass(frozen=True)
class LintSettings(Target):
    json: bool = False
    verbose: bool = False


def run_migrate(s: Target) -> int:
    with database(s, writes="migrate") as srv, Migrator(srv.dsn, s.migration_dirs) as m:
        pending = m.pending()
        if not pending:
            say("nothing to apply: every migration is applied")
            return 0
        applied = m.apply(on_step=lambda mid: say(f"applying {mid}"))
        say(f"applied {len(applied)} migration(s)")
    return 0


def run_rollback(s: RollbackSettings) -> int:
    """Rehearse first: list what the rollback drops and the rows it holds; refuse to drop
    rows unless --accept-data-loss; --dry-run stops after the list."""
    steps = None if s.all else s.steps
    verb = "rollback --dry-run" if s.dry_run else "rollback"
    with database(s, writes=verb) as srv, Migrator(srv.dsn, s.migration_dirs) as m:
        m.check_unlocked()  # before a rehearsal that a lock would make pointless
        try:
            plan = m.rollback_plan(steps)
        except MigrationError:
            if not s.accept_data_loss or s.dry_run:
                raise
            note("rollback: could not rehearse the rollback; going ahead (--accept-data-loss)")
            plan = None
        if plan is not None:
            if not plan.migrations:
                say("nothing to roll back")
                return 0
            for line in plan.lines():
                (say if s.dry_run else note)(line)
            if s.dry_run:
                say("dry run: nothing was changed")
                return 0
            if plan.losses and not s.accept_data_loss:
                raise MigrationError(
                    f"refusing to roll back {', '.join(plan.migrations)}: it would drop data: "
                    + "; ".join(str(d) for d in plan.losses)
                    + ". Nothing was changed; --accept-data-loss rolls back anyway, "
                    "--dry-run shows the plan"
                )
        done = m.rollback(steps, on_step=lambda mid: say(f"rolling back {mid}"))
        say(f"rolled back {len(done)} migration(s)" if done else "nothing to roll back")
    return 0


def run_status(s: StatusSettings) -> int:
    with database(s, writes="status") as srv, Migrator(srv.dsn, s.migration_dirs) as m:
        states = m.status()
        report = {
            "server_version": db.server_version(srv.dsn),
            "provider": srv.provider,
            "dsn": db.redact(srv.dsn),
            "migrations": [
                {"id": st.id, "source": st.source, "applied": st.applied} for st in states
            ],
            "pending": sum(not st.applied for st in states),
        }
    if s.json:
        say(json.dumps(report, indent=2))
        return 0
    say(f"server: PostgreSQL {report['server_version']} ({report['provider']})")
    for st in states:
        say(f"  [{'x' if st.applied else ' '}] {st.id}  ({st.source})")
    say(f"{report['pending']} pending")
    return 0


def run_break_lock(s: Target) -> int:
    with database(s, writes="break-lock") as srv, Migrator(srv.dsn, s.migration_dirs) as m:
        held = m.break_lock()
    say("yoyo lock removed" if held else "no yoyo lock was held")
    return 0


def run_db_start(s: DbStartSettings) -> int:
    servers.prepare_state_dir()  # refuse an unsafe place before starting anything
    state = read_state()
    if state:
        dead = servers.detached_alive(state)
        if dead is None:
            say(state["dsn"])
            note(f"a server is already running ({state['provider']}); `harness db stop` ends it")
            return 0
        note(f"the server recorded in {servers.state_file()} is gone ({dead}); starting a new one")
        servers.stop_detached(state)  # whatever is left of it
        servers.state_file().unlink(missing_ok=True)
    srv = servers.start_server(postgres=s.postgres)
    try:
        path = servers.write_state(srv.detach())
    except BaseException:
        servers.stop_detached({"workdir": str(srv.workdir)})
        raise
    note(
        f"started PostgreSQL ({srv.provider}); commands without --dsn use it until "
        f"`harness db stop` (its DSN, with the password, is in {path}, readable only by you)"
    )
    say(srv.dsn)
    return 0


def run_db_stop(_: NoSettings) -> int:
    state = read_state()
    if not state:
        say("no server is running")
        return 0
    dead = servers.detached_alive(state)
    servers.stop_detached(state)
    servers.state_file().unlink(missing_ok=True)
    say("deleted what was left of the server" if dead else "stopped and deleted the server")
    return 0


def run_fingerprint(s: FingerprintSettings) -> int:
    with database(s) as srv:
        # A throwaway server holds no schema worth printing: build the migration set.
        throwaway = srv.provider != "dsn" and "(db start)" not in srv.provider
        if s.build or throwaway:
            with db.scratch_database(srv.dsn, prefix="harness_fp") as dsn:
                with Migrator(dsn, s.migration_dirs) as m:
                    m.apply()
                fp = fingerprint_dsn(dsn, bodies=s.bodies)
        else:
            fp = fingerprint_dsn(srv.dsn, bodies=s.bodies)
    if s.json:
        say(json.dumps({"hash": digest(fp), "fingerprint": fp}, indent=2, default=str))
    else:
        say(render(fp))
    return 0


def run_diff(s: DiffSettings) -> int:
    before = fingerprint_dsn(s.before)
    after = fingerprint_dsn(s.after)
    sentences = diff(before, after)
    for sentence in sentences:
        say(sentence)
    if not sentences:
        say(f"same schema ({digest(before)})")
    return 1 if sentences else 0


def run_lint(s: LintSettings) -> int:
    with database(s) as srv:
        if srv.provider == "dsn":
            report = lint(s.migration_dirs, srv.dsn)
        else:
            with db.scratch_database(srv.dsn, prefix="harness_lint") as dsn:
                report = lint(s.migration_dirs, dsn)
    if s.json:
        data = asdict(report) | {"ok": report.ok}
        say(json.dumps(data, indent=2))
    else:
        for line in report.lines():
            say(line)
        if s.verbose:
            for f in report.findings:
                if f.expected:
                    say(f"{f.file}:{f.line}: {f.rule} (expected in a rollback file)")
        say(("ok: " if report.ok else "FAILED: ") + report.summary())
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    command(
        sub,
        "migrate",
        run_migrate,
        Target,
        database=True,
        help="apply pending migrations",
        description="Apply every pending migration, saying which.",
    )

    p = command(
        sub,
        "rollback",
        run_rollback,
        RollbackSettings,
        database=True,
        help="roll back applied migrations",
        description="Roll back the last applied migration(s) with their .rollback.sql files. "
        "The rollback is first rehearsed on a scratch database: every table and column it "
        "would drop is listed with the rows it holds, and when any holds rows the rollback "
        "is refused (exit 1) unless --accept-data-loss.",
    )
    g = p.add_mutually_exclusive_group()
    add(g, "--steps", type=whole(1, 10_000), default=1, help="how many (default 1)")
    add(g, "--all", action="store_true", default=False, help="every applied migration")
    add(
        p,
        "--dry-run",
        action="store_true",
        default=False,
        help="print the plan (every table and column each step drops, with its rows) and "
        "change nothing",
    )
    add(
        p,
        "--accept-data-loss",
        action="store_true",
        default=False,
        help="roll back even when a table or column it drops holds rows",
    )

    p = command(
        sub,
        "status",
        run_status,
        StatusSettings,
        database=True,
        help="which migrations are applied",
        description="List the migration set and which are applied.",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")

    command(
        sub,
        "break-lock",
        run_break_lock,
        Target,
        database=True,
        help="remove a stale yoyo lock",
        description="Remove the yoyo migration lock left by a run that died. Only when "
        "no migration is running.",
    )

    dbsub = group(
        sub,
        "db",
        "db_command",
        help="keep a throwaway server running between commands",
        description="`db start` starts a throwaway server and prints its DSN; "
        "later commands without --dsn use it; `db stop` ends it.",
    )
    p = command(
        dbsub, "start", run_db_start, DbStartSettings, help="start a server and print its DSN"
    )
    add(
        p,
        "--postgres",
        metavar="PROVIDER",
        env_var="HARNESS_POSTGRES",
        help="embedded (default) or system",
    )
    command(dbsub, "stop", run_db_stop, NoSettings, help="stop and delete the server")

    schema = group(
        sub,
        "schema",
        "schema_command",
        help="schema fingerprints from the catalogs",
        description="Fingerprint a schema from the catalogs, or compare two databases.",
    )
    p = command(
        schema,
        "fingerprint",
        run_fingerprint,
        FingerprintSettings,
        database=True,
        help="print the schema fingerprint and its hash",
        description="Print every table, column, constraint, index, enum, sequence, "
        "function (arguments, result, language, body hash, volatility, SECURITY "
        "DEFINER, settings such as search_path, owner, grants), trigger, privilege "
        "and row level security policy, then a hash. With --dsn the database "
        "itself; otherwise the migration set applied to a scratch database.",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")
    add(p, "--bodies", action="store_true", default=False, help="include full function bodies")
    add(
        p,
        "--build",
        action="store_true",
        default=False,
        help="apply the migration set to a scratch database on the server and fingerprint "
        "that (the default without --dsn)",
    )
    p = command(
        schema,
        "diff",
        run_diff,
        DiffSettings,
        help="compare the schemas of two databases",
        description="Say every difference between two databases' "
        "schemas, one sentence each. Exit 1 when they differ.",
    )
    add(p, "before", metavar="BEFORE_DSN")
    add(p, "after", metavar="AFTER_DSN")

    p = command(
        sub,
        "lint",
        run_lint,
        LintSettings,
        database=True,
        help="lint the migration set with squawk",
        description="Run squawk with the packaged configuration over every migration "
        "and rollback file, read lock_timeout and statement_timeout through the "
        "migration connection, and report a yoyo lock left on the database with the "
        f"command that breaks it ({BREAK_LOCK_HINT}). With --dsn the lock is looked "
        "for on that database; otherwise on a scratch database.",
        epilog="Exit status: 0 clean, 1 a violation or problem, 2 usage or connection error.",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")
    add(
        p,
        "-v",
        "--verbose",
        action="store_true",
        env_var="HARNESS_LINT_VERBOSE",
        help="also list the expected drops in rollback files",
    )
