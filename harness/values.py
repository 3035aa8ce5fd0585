"""Values as people type them, on the command line, in environment variables, in scenario
and CSV files: whole numbers within bounds, decimal amounts, durations, flags and lists.

Each parser takes text and returns the value, or raises :class:`ValueError` whose message
says what is wrong in words a user can act on (argparse shows it as a usage error; the
environment and file readers prefix it with where the value came from).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from harness.config import MARKETPLACE_CONFIG

# Largest amount numeric(10,2) holds, and the smallest step of money.
MAX_AMOUNT: Decimal = MARKETPLACE_CONFIG["MAX_AMOUNT"]
CENT = Decimal("0.01")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_PLAIN_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers within ``[low, high]`` (either bound may be open)."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"not a whole number: {text!r}") from None
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}: {text!r}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high:,}: {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


positive_int = whole(1)
non_negative_int = whole(0)


def number(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """A parser of finite numbers within ``[low, high]``."""

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {text!r}")
        if low is not None and value < low:
            raise ValueError(f"must be at least {low:g}: {text!r}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high:g}: {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def flag(text: str) -> bool:
    """1/true/yes/on or 0/false/no/off (any case)."""
    value = str(text).strip().lower()
    if value in TRUE:
        return True
    if value in FALSE or value == "":
        return False
    raise ValueError(f"not a yes/no value: {text!r} (use 1 or 0)")


def amount(text: object, *, positive: bool = False, allow_zero: bool = True) -> Decimal:
    """Money as a plain decimal with at most two places, within numeric(10,2).

    Exponents (``1e2``), ``NaN``, infinities, thousands separators and fractions of a
    cent are refused: an amount is never rounded or reinterpreted silently."""
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        raise ValueError(f'not an amount: {text!r} (write it as a quoted decimal, e.g. "12.50")')
    raw = str(text).strip()
    if not _PLAIN_DECIMAL.fullmatch(raw):
        raise ValueError(f"not a plain decimal amount: {str(text)[:40]!r} (e.g. 12.50)")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"not an amount: {raw[:40]!r}") from None
    if abs(value) > MAX_AMOUNT:  # before quantize, which fails on huge values
        raise ValueError(f"more than {MAX_AMOUNT}: {raw[:40]!r}")
    if value != value.quantize(CENT):
        raise ValueError(f"fractions of a cent: {raw[:40]!r}")
    if value < 0 or (positive and value == 0) or (not allow_zero and value == 0):
        raise ValueError(f"must be {'more than' if positive else 'at least'} 0: {raw!r}")
    return value.quantize(CENT)


def parse_duration(text: str) -> timedelta:
    """``90`` (seconds), ``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``250ms``."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 5m, 2h, 1d, 1h30m)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds > 10 * 365 * 86400:
        raise ValueError(f"longer than ten years: {text!r}")
    return timedelta(seconds=seconds)


def duration(text: str) -> timedelta:
    """:func:`parse_duration` under the name argparse shows."""
    return parse_duration(text)


def show_duration(td: timedelta) -> str:
    """The shortest whole-unit spelling: ``5m``, ``2h``, ``90s``."""
    seconds = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names; an empty list is refused (it would mean "all"
    where a user meant "some")."""
    items = tuple(part.strip() for part in str(text).split(",") if part.strip())
    if not items:
        raise ValueError(f"an empty list: {text!r} (name at least one)")
    return items


def wholes(low: int | None = None, high: int | None = None) -> Callable[[str], tuple[int, ...]]:
    """A comma-separated list of whole numbers, each within ``[low, high]``; not empty."""
    one = whole(low, high)

    def parse(text: str) -> tuple[int, ...]:
        return tuple(one(part) for part in names(text))

    parse.__name__ = "list of whole numbers"
    return parse


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting one of ``allowed``."""

    def parse(text: str) -> str:
        value = str(text).strip()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of: {', '.join(allowed)}")
        return value

    parse.__name__ = "choice"
    return parse


def text(text: str) -> str:
    """Any non-empty text."""
    if not str(text).strip():
        raise ValueError("empty")
    return str(text)


__all__ = [
    "CENT",
    "MAX_AMOUNT",
    "amount",
    "choice",
    "duration",
    "flag",
    "names",
    "non_negative_int",
    "number",
    "parse_duration",
    "positive_int",
    "show_duration",
    "text",
    "whole",
    "wholes",
]
