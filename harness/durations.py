"""Durations as people type them: ``90`` (seconds), ``30s``, ``5m``, ``2h``, ``1d``,
``1h30m``, ``250ms``. One parser for every option and scenario key that takes one."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """The duration ``text`` names; ArgumentTypeError (argparse's) when it names none."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (examples: 30s, 5m, 2h, 1d, 1h30m)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def show_duration(td: timedelta) -> str:
    """The shortest whole-unit spelling: ``5m``, ``2h``, ``90s``."""
    seconds = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
