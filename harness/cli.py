"""The ``harness`` command line: ``cli(argv) -> int`` does the work, ``main()`` wraps it.

Exit status: 0 all good, 1 a check or operation failed, 2 usage or connection error.
Every option that names a database has an environment default given in ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence

from harness import servers
from harness.errors import HarnessError, UsageError
from harness.migrations import Migrator

# Modules that add subcommands: each has ``register(subparsers, common)``.
COMMAND_MODULES: tuple[str, ...] = (
    "harness.queue",
    "harness.worker",
    "harness.leads_import",
    "harness.scenarios",
    "harness.reconcile",
    "harness.verify.command",
    "harness.fingerprint",
    "harness.lint",
    "harness.watch",
    "harness.gate",
    "harness.load",
    "harness.bench",
)

PROG = "harness"


def common_parser() -> argparse.ArgumentParser:
    """Options every database command takes."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("database")
    g.add_argument(
        "--dsn",
        default=None,
        help="an existing server, e.g. postgresql://user:pw@host/db (env HARNESS_DSN)",
    )
    g.add_argument(
        "--postgres",
        default=None,
        metavar="PROVIDER",
        help="throwaway server: embedded (default), system, or docker[:IMAGE] "
        "(env HARNESS_POSTGRES)",
    )
    g.add_argument(
        "--migrations",
        action="append",
        metavar="DIR",
        help="migration directory, repeatable, applied in the order given; default the "
        "project's migrations/ (env HARNESS_MIGRATIONS, separated by ':')",
    )
    return p


def apply_database_defaults(args: argparse.Namespace) -> None:
    """Fill --dsn/--postgres from the environment. An option given on the command line
    wins over both variables; with neither given, HARNESS_DSN wins over HARNESS_POSTGRES
    (the documented order). Both given explicitly is refused by servers.start_server."""
    if not (hasattr(args, "dsn") and hasattr(args, "postgres")):
        return
    if args.dsn is None and args.postgres is None:
        args.dsn = os.environ.get("HARNESS_DSN") or None
        if args.dsn is None:
            args.postgres = os.environ.get("HARNESS_POSTGRES") or None


def migration_dirs(args: argparse.Namespace) -> list[str] | None:
    if args.migrations:
        return args.migrations
    env = os.environ.get("HARNESS_MIGRATIONS")
    return env.split(os.pathsep) if env else None


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[servers.Server]:
    """The server a command runs against: --dsn, --postgres, a server left running by
    ``harness db start``, or a throwaway embedded one."""
    if not args.dsn and not args.postgres:
        state = _read_state()
        if state:
            yield servers.Server(dsn=state["dsn"], provider=f"{state['provider']} (db start)")
            return
    with servers.server(dsn=args.dsn, postgres=args.postgres) as srv:
        yield srv


def _read_state() -> dict | None:
    path = servers.state_file()
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def say(*parts: object) -> None:
    print(*parts, flush=True)


def note(*parts: object) -> None:
    """Progress and diagnostics go to stderr, so stdout stays machine-readable."""
    print(*parts, file=sys.stderr, flush=True)


# -- commands -----------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    with database(args) as srv, Migrator(srv.dsn, migration_dirs(args)) as m:
        pending = m.pending()
        if not pending:
            say("nothing to apply: every migration is applied")
            return 0
        applied = m.apply(on_step=lambda mid: say(f"applying {mid}"))
        say(f"applied {len(applied)} migration(s)")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    steps = None if args.all else args.steps
    with database(args) as srv, Migrator(srv.dsn, migration_dirs(args)) as m:
        done = m.rollback(steps, on_step=lambda mid: say(f"rolling back {mid}"))
        say(f"rolled back {len(done)} migration(s)" if done else "nothing to roll back")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with database(args) as srv, Migrator(srv.dsn, migration_dirs(args)) as m:
        states = m.status()
        from harness.database import redact, server_version

        report = {
            "server_version": server_version(srv.dsn),
            "provider": srv.provider,
            "dsn": redact(srv.dsn),
            "migrations": [
                {"id": s.id, "source": s.source, "applied": s.applied} for s in states
            ],
            "pending": sum(not s.applied for s in states),
        }
    if args.json:
        say(json.dumps(report, indent=2))
        return 0
    say(f"server: PostgreSQL {report['server_version']} ({report['provider']})")
    for s in states:
        say(f"  [{'x' if s.applied else ' '}] {s.id}  ({s.source})")
    say(f"{report['pending']} pending")
    return 0


def cmd_break_lock(args: argparse.Namespace) -> int:
    with database(args) as srv, Migrator(srv.dsn, migration_dirs(args)) as m:
        held = m.break_lock()
    say("yoyo lock removed" if held else "no yoyo lock was held")
    return 0


def cmd_db_start(args: argparse.Namespace) -> int:
    path = servers.state_file()
    state = _read_state()
    if state:
        say(state["dsn"])
        note(f"a server is already running ({state['provider']}); `harness db stop` ends it")
        return 0
    srv = servers.start_server(postgres=args.postgres)
    info = srv.detach()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    note(f"started PostgreSQL ({srv.provider}); commands without --dsn use it until "
         "`harness db stop`")
    say(srv.dsn)
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    state = _read_state()
    if not state:
        say("no server is running")
        return 0
    servers.stop_detached(state)
    servers.state_file().unlink(missing_ok=True)
    say("stopped and deleted the server")
    return 0


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Install PostgreSQL money-path functions with versioned migrations, "
        "and prove against a real server that they keep money safe.",
        epilog="Exit status: 0 success, 1 a check or operation failed, 2 usage or "
        "connection error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("migrate", parents=[common], help="apply pending migrations",
                       description="Apply every pending migration, saying which.")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("rollback", parents=[common], help="roll back applied migrations",
                       description="Roll back the last applied migration(s) with their "
                       ".rollback.sql files.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=_positive_int, default=1, help="how many (default 1)")
    g.add_argument("--all", action="store_true", help="every applied migration")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("status", parents=[common], help="which migrations are applied",
                       description="List the migration set and which are applied.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("break-lock", parents=[common], help="remove a stale yoyo lock",
                       description="Remove the yoyo migration lock left by a run that "
                       "died. Only when no migration is running.")
    p.set_defaults(func=cmd_break_lock)

    db = sub.add_parser("db", help="keep a throwaway server running between commands",
                        description="`db start` starts a throwaway server and prints its "
                        "DSN; later commands without --dsn use it; `db stop` ends it.")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dbsub.add_parser("start", help="start a server and print its DSN")
    p.add_argument("--postgres", default=os.environ.get("HARNESS_POSTGRES"),
                   metavar="PROVIDER", help="embedded (default) or system "
                   "(env HARNESS_POSTGRES)")
    p.set_defaults(func=cmd_db_start)
    p = dbsub.add_parser("stop", help="stop and delete the server")
    p.set_defaults(func=cmd_db_stop)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def cli(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_database_defaults(args)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        cause = f" (caused by {type(exc.__cause__).__name__})" if exc.__cause__ else ""
        message = " ".join(f"{exc.message}{cause}".split())  # always one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def main() -> None:
    sys.exit(cli())


__all__ = ["cli", "main", "build_parser", "database", "migration_dirs", "UsageError"]
