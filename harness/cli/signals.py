"""Interruption: SIGINT, SIGTERM and SIGHUP become one exception in the main thread, from
the first moment of the process, and one line with the conventional exit status.

:func:`install` runs before the command modules are even imported (``harness.cli.main``),
so a signal in the first second finds a handler. The handler raises :class:`Interrupted`
(a ``KeyboardInterrupt``, so every ``finally`` and context manager on the way out runs:
the throwaway server is stopped and deleted, scratch databases are dropped) and ignores
any further signal while that cleanup runs: a second Ctrl-C must not cut the cleanup
short. A SIGKILL cannot be caught; the server's watchdog covers it
(:mod:`harness.db.watchdog`).

This module imports only the standard library: it must be cheap to import first.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The command was interrupted by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: BaseException) -> int:
    """128 + the signal's number: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def describe(exc: BaseException) -> str:
    name = signal.Signals(int(getattr(exc, "signum", signal.SIGINT))).name
    return f"interrupted by {name}"


def _handler(signum: int, frame: FrameType | None) -> None:
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    # Threads still winding down (a check's helper whose session the cleanup ends) die
    # of that on purpose: their deaths are not news, and the one line stays the last.
    threading.excepthook = _quiet
    sys.unraisablehook = _quiet
    raise Interrupted(signum)


def _quiet(args: object) -> None:
    return None


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP (unless SIGHUP is ignored, as under nohup)."""
    for sig in HANDLED:
        if sig == signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN:
            continue
        signal.signal(sig, _handler)


__all__ = ["Interrupted", "describe", "exit_status", "install"]
