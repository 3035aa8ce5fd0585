"""What every command shares: options declared with their environment variable, the
database a command runs against, typed settings, and the two output streams.

An option with ``env=`` takes its default from that variable (declared in
:mod:`harness.env`) *after* parsing and only for the command that runs, so a bad value in
an unrelated variable never stops another command, and ``--help`` reads nothing. Results
go to stdout (machine-readable where asked); progress and diagnostics to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from harness import db, env
from harness.db import servers
from harness.db.connections import scrub
from harness.errors import UsageError

PROG = "harness"
ENV_ATTR = "harness_env"
FLAG_ACTIONS = ("store_true", "store_false", "count", "help", "version")
S = TypeVar("S")


def say(*parts: object) -> None:
    """A result line, on stdout."""
    print(*parts, flush=True)


def note(*parts: object) -> None:
    """Progress and diagnostics, on stderr, so stdout stays machine-readable; any known
    password is masked."""
    print(scrub(" ".join(str(p) for p in parts)), file=sys.stderr, flush=True)


class ScrubSecrets(logging.Filter):
    """A log filter that masks every known password in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``harness migrate: error: ... (see
    harness migrate --help)``), like every other error of the harness."""

    def error(self, message: str) -> NoReturn:
        line = scrub(" ".join(message.split()))
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


# -- options ----------------------------------------------------------------------------------


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse shows only ArgumentTypeError messages; our parsers raise ValueError."""

    def convert(text: str) -> Any:
        try:
            return parse(env.plausible(text))
        except (ValueError, TypeError, OverflowError) as exc:
            raise argparse.ArgumentTypeError(" ".join(str(exc).split())) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add(
    parser: argparse.ArgumentParser | Any, *flags: str, env_var: str | None = None, **kwargs: Any
) -> argparse.Action:
    """``add_argument`` with an optional environment variable as the default.

    The variable's parser is the option's type unless one is given; its help text gains
    ``(env NAME)``. The value is resolved by :func:`resolve` after parsing."""
    if "type" in kwargs and kwargs["type"] is not None:
        kwargs["type"] = _argparse_type(kwargs["type"])
    fallback = kwargs.pop("default", None)
    if env_var is not None:
        var = env.VARIABLES[env_var]
        if kwargs.get("action") not in ("store_true", "append") and "type" not in kwargs:
            kwargs["type"] = _argparse_type(var.parse)
        kwargs["help"] = f"{kwargs.get('help', var.help)} (env {env_var})"
        if fallback is None:
            fallback = var.default
    if "type" not in kwargs and kwargs.get("action") not in FLAG_ACTIONS:
        # Even free text (a partner's name, a DSN argument) is refused when it is huge or
        # holds characters that are not text, before it reaches a query or a path.
        kwargs["type"] = _argparse_type(env.plausible)
    action = parser.add_argument(*flags, default=None if env_var else fallback, **kwargs)
    if env_var is not None:
        setattr(action, ENV_ATTR, (env_var, fallback))
    return action


def _parsers_used(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[argparse.ArgumentParser]:
    chain = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                chain += _parsers_used(action.choices[chosen], args)
    return chain


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill every option left unset on the command line from its environment variable,
    else its default. A bad value is a UsageError naming the variable."""
    for p in _parsers_used(parser, args):
        for action in p._actions:
            declared = getattr(action, ENV_ATTR, None)
            if declared is None or getattr(args, action.dest, None) is not None:
                continue
            name, fallback = declared
            value = env.read(name)
            if value is None:
                value = fallback
            if (
                action.option_strings
                and isinstance(action, argparse._AppendAction)
                and value is not None
                and not isinstance(value, list)
            ):
                value = list(value) if isinstance(value, tuple) else [value]
            setattr(args, action.dest, value)


# -- the database -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a command runs: an existing server (``dsn``), a throwaway one
    (``postgres``), or the one ``harness db start`` left running; and the migration set."""

    dsn: str | None = None
    postgres: str | None = None
    migrations: tuple[str, ...] | None = None

    @property
    def migration_dirs(self) -> list[str] | None:
        return list(self.migrations) if self.migrations else None


def database_options(parser: argparse.ArgumentParser) -> None:
    """--dsn, --postgres and --migrations."""
    g = parser.add_argument_group("database")
    add(
        g,
        "--dsn",
        type=env.dsn,
        help="an existing server, e.g. "
        "postgresql://user:pw@host/db (env HARNESS_DSN; set but empty is an error)",
    )
    add(
        g,
        "--postgres",
        metavar="PROVIDER",
        help="throwaway server: embedded (default), system, or docker[:IMAGE] "
        "(env HARNESS_POSTGRES)",
    )
    add(
        g,
        "--migrations",
        action="append",
        metavar="DIR",
        help="migration directory, repeatable, applied in the order given; default the "
        "packaged migrations (env HARNESS_MIGRATIONS, separated by ':')",
    )


def target_from(args: argparse.Namespace) -> Target:
    """The target the options name. An option on the command line wins over both
    variables; with neither option given, HARNESS_DSN wins over HARNESS_POSTGRES.

    HARNESS_DSN set but empty is an error whatever the options say: the secret a
    pipeline meant to pass is missing, and nothing must run against anything else."""
    dsn, postgres = getattr(args, "dsn", None), getattr(args, "postgres", None)
    from_env = env.read("HARNESS_DSN")
    if dsn is None and postgres is None:
        dsn = from_env
        if dsn is None:
            postgres = env.read("HARNESS_POSTGRES")
    migrations = getattr(args, "migrations", None) or env.read("HARNESS_MIGRATIONS")
    return Target(dsn, postgres, tuple(migrations) if migrations else None)


def read_state() -> dict[str, Any] | None:
    """What ``harness db start`` recorded, if anything (the server may have died since:
    :func:`harness.db.servers.detached_alive` says)."""
    path = servers.state_file()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):  # none recorded, or not one we can read
        return None
    return state if isinstance(state, dict) and "dsn" in state else None


@contextlib.contextmanager
def database(target: Target, *, writes: str | None = None) -> Iterator[servers.Server]:
    """The server a command runs against: --dsn, --postgres, a server left running by
    ``harness db start``, or a throwaway embedded one (stopped and deleted afterwards).

    ``writes``: the command changes the database (``"migrate"``...): say on stderr which
    server and database it is about to touch, before it does."""
    if not target.dsn and not target.postgres:
        state = read_state()
        if state:
            dead = servers.detached_alive(state)
            if dead is not None:
                raise UsageError(
                    f"the server `harness db start` left running is gone ({dead}); "
                    "run `harness db start` again, or give --dsn"
                )
            srv = servers.Server(dsn=state["dsn"], provider=f"{state['provider']} (db start)")
            if writes:
                announce(srv, writes)
            yield srv
            return
    with servers.server(dsn=target.dsn, postgres=target.postgres) as srv:
        if writes:
            announce(srv, writes)
        yield srv


def describe_target(dsn: str) -> str:
    """``database app on host db.example port 5432 (PostgreSQL 15.8) as app``: where a
    DSN really leads, from the connection itself (defaults and PG* variables included)."""
    with db.connect(dsn) as conn:
        info = conn.info
        version = db.scalar(conn, "SHOW server_version")
        host = info.host
        where = f"socket {host}" if host.startswith("/") else f"host {host}"
        return (
            f"database {info.dbname} on {where} port {info.port} "
            f"(PostgreSQL {version}) as {info.user}"
        )


def announce(srv: servers.Server, verb: str) -> None:
    """One line on stderr naming what a writing command is about to touch."""
    kind = "" if srv.provider == "dsn" else f", {srv.provider} server"
    note(f"{verb}: {describe_target(srv.dsn)}{kind}")


def require_migrated(dsn: str, dirs: list[str] | None) -> None:
    """UsageError (exit 2) unless every migration of the set is applied to ``dsn``:
    commands that work on business tables say so instead of failing on a missing table."""
    from harness.db.migrations import pending_migrations

    pending = pending_migrations(dsn, dirs)
    if pending:
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        shown = ", ".join(pending[:3]) + more
        raise UsageError(
            f"database {db.dbname_of(dsn)} is not migrated ({len(pending)} migration(s) "
            f"pending: {shown}): run harness migrate first"
        )


# -- commands and their settings --------------------------------------------------------------


def settings(cls: type[S], args: argparse.Namespace) -> S:
    """The command's typed settings, from the parsed (and resolved) options."""
    values: dict[str, Any] = {}
    is_target = issubclass(cls, Target)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if is_target and f.name in ("dsn", "postgres", "migrations"):
            continue
        if not hasattr(args, f.name):
            raise UsageError(f"internal: no option for setting {f.name!r}")
        value = getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    if is_target:
        t = target_from(args)
        values.update(dsn=t.dsn, postgres=t.postgres, migrations=t.migrations)
    return cls(**values)


def command(
    subparsers: Any,
    name: str,
    run: Callable[[S], int],
    settings_cls: type[S],
    *,
    database: bool = False,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A sub-command whose options become a ``settings_cls`` for ``run``."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
    if database:
        database_options(p)
    p.set_defaults(run=run, settings_cls=settings_cls)
    return p


def group(subparsers: Any, name: str, dest: str, **kwargs: Any) -> Any:
    """A command with actions (``queue status``): its sub-parsers."""
    p = subparsers.add_parser(name, **kwargs)
    return p.add_subparsers(dest=dest, metavar="ACTION", required=True)


def write_text(path: str, text: str) -> None:
    """Write a report (``-``: stdout), any known password masked. The path was checked
    before the run (:func:`harness.env.output_path`); if it still cannot be written, one
    line and exit 2."""
    text = scrub(text)
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    with report_errors(path):
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def report_errors(path: str) -> Iterator[None]:
    """An OSError writing the report at ``path`` becomes one line, exit 2."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A command that takes no options."""


__all__ = [
    "PROG",
    "NoSettings",
    "Parser",
    "ScrubSecrets",
    "Target",
    "add",
    "announce",
    "command",
    "database",
    "describe_target",
    "group",
    "note",
    "read_state",
    "report_errors",
    "require_migrated",
    "resolve",
    "say",
    "settings",
    "target_from",
    "write_text",
]
