"""The ``harness`` command line: every parser and every command lives in this package;
the library modules never import it.

``cli(argv) -> int`` does the work, ``main()`` wraps it. Exit status: 0 all good, 1 a check
or operation failed, 2 usage or connection error, 128 + N when signal N interrupted it
(130 Ctrl-C, 143 SIGTERM). Every error ends as one line on stderr, with any password
masked.

``main()`` installs the signal handlers before it imports the command modules (which take
most of a second), so this module imports nothing heavy at the top.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.cli import signals

if TYPE_CHECKING:
    import argparse

PROG = "harness"


def build_parser() -> argparse.ArgumentParser:
    from harness.cli import deploy, load, migrations, money, outbox, scenarios, serve, verify
    from harness.cli.common import Parser

    parser = Parser(
        prog=PROG,
        description="Install PostgreSQL money-path functions with versioned migrations, "
        "and prove against a real server that they keep money safe.",
        epilog="Exit status: 0 success, 1 a check or operation failed, 2 usage or "
        "connection error, 130/143 interrupted by SIGINT/SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each module adds its commands with ``register(subparsers)``, in the order of --help.
    for module in (migrations, verify, deploy, scenarios, money, outbox, load, serve):
        module.register(sub)
    return parser


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser ``cli`` uses, built once per process (parsing leaves it unchanged)."""
    return build_parser()


def error_line(message: str) -> str:
    """``harness: error: ...`` on one line, every known password masked."""
    from harness.db.connections import scrub

    return f"{PROG}: error: {scrub(' '.join(message.split()))}"


def cli(argv: Sequence[str] | None = None) -> int:
    from harness.cli.common import resolve, settings
    from harness.errors import HarnessError

    try:
        parser = _parser()
        args = parser.parse_args(argv)
        resolve(parser, args)
        return int(args.run(settings(args.settings_cls, args)) or 0)
    except HarnessError as exc:
        cause = f" (caused by {type(exc.__cause__).__name__})" if exc.__cause__ else ""
        print(error_line(f"{exc.message}{cause}"), file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"{PROG}: {signals.describe(exc)}; stopped", file=sys.stderr, flush=True)
        return signals.exit_status(exc)


def main() -> None:
    signals.install()
    try:
        code = cli()
    except KeyboardInterrupt as exc:  # while the command modules were being imported
        print(f"{PROG}: {signals.describe(exc)}; stopped", file=sys.stderr, flush=True)
        code = signals.exit_status(exc)
    except SystemExit as exc:  # --help, --version, a usage error
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if code > 128:
        # Interrupted: everything was cleaned up on the way out. Do not wait for threads
        # that may still be winding down (a check blocked in a library call).
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def __getattr__(name: str) -> Any:
    """``database``, ``note`` and ``say`` from :mod:`harness.cli.common`, loaded lazily."""
    if name in ("database", "note", "say"):
        from harness.cli import common

        return getattr(common, name)
    raise AttributeError(name)


__all__ = ["build_parser", "cli", "error_line", "main"]
