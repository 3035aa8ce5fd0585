"""The ``harness`` command line: every parser and every command lives in this package;
the library modules never import it.

``cli(argv) -> int`` does the work, ``main()`` wraps it. Exit status: 0 all good, 1 a check
or operation failed, 2 usage or connection error. Every error the harness raises ends as
one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness import __version__
from harness.cli import deploy, load, migrations, money, outbox, scenarios, serve, verify
from harness.cli.common import PROG, database, note, resolve, say, settings
from harness.errors import HarnessError

# Each module adds its commands with ``register(subparsers)``, in the order of --help.
COMMAND_MODULES = (migrations, verify, deploy, scenarios, money, outbox, load, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Install PostgreSQL money-path functions with versioned migrations, "
        "and prove against a real server that they keep money safe.",
        epilog="Exit status: 0 success, 1 a check or operation failed, 2 usage or "
        "connection error.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve(parser, args)
        return int(args.run(settings(args.settings_cls, args)) or 0)
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


__all__ = ["build_parser", "cli", "database", "main", "note", "say"]
