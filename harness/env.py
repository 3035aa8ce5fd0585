"""Every ``HARNESS_*`` environment variable, declared once: its type, bounds, default and
meaning.

Nothing reads a variable at import time, and nothing reads one except through
:func:`read`: the command line (for option defaults) and the entry points that run in
another process (the locustfile, ``harness serve``'s workers). A bad value is a
:class:`~harness.errors.UsageError` naming the variable, so it ends as one line and exit
status 2, never a traceback. The table in ``docs/cli.md`` is generated from
:data:`VARIABLES` and checked against it by a test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from harness import values
from harness.config import EMAIL_CONFIG, MARKETPLACE_CONFIG
from harness.errors import UsageError

# No value of any variable or option is longer, or holds a control character or bytes
# that are not text: such a value is a mistake (a pasted file, a binary), refused before
# its own parser sees it.
MAX_VALUE_LENGTH = 4096


def plausible(text: str) -> str:
    """``text`` unless it is longer than :data:`MAX_VALUE_LENGTH` or holds a character
    that is not printable (control characters, undecodable bytes); ValueError if so."""
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"longer than {MAX_VALUE_LENGTH:,} characters ({len(text):,})")
    odd = next((c for c in text if not c.isprintable()), None)
    if odd is not None:
        raise ValueError(f"holds a character that is not printable text ({odd!r})")
    return text


@dataclass(frozen=True)
class Variable:
    """One environment variable: how its text becomes a value, and what it is for."""

    name: str
    parse: Callable[[str], Any]
    help: str
    default: Any = None
    # "unset": an empty value counts as unset; "error": an empty value is refused (a DSN
    # whose secret is missing must not fall back to anything).
    blank: str = "unset"
    group: str = "general"
    # A secret (a DSN, an SMTP URL): its value is never shown in a message.
    secret: bool = False

    def read(self, environ: Mapping[str, str] | None = None) -> Any:
        """The variable's value (its default when unset); UsageError when bad."""
        raw = (os.environ if environ is None else environ).get(self.name)
        if raw is None:
            return self.default
        if raw.strip() == "":
            if self.blank == "error":
                raise UsageError(f"{self.name} is set but empty: unset it, or give a value")
            return self.default
        try:
            return self.parse(plausible(raw))
        except (ValueError, TypeError, OverflowError) as exc:
            reason = " ".join(str(exc).split()) or "not a valid value"
            if self.secret:
                raise UsageError(f"{self.name} (value not shown): {reason}") from None
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            raise UsageError(f"{self.name}={shown!r}: {reason}") from None


VARIABLES: dict[str, Variable] = {}


def declare(
    name: str,
    parse: Callable[[str], Any],
    help: str,
    default: Any = None,
    *,
    blank: str = "unset",
    group: str = "general",
    secret: bool = False,
) -> Variable:
    if not re.fullmatch(r"HARNESS_[A-Z0-9_]+", name) or name in VARIABLES:
        raise ValueError(f"bad or repeated variable name {name!r}")
    var = Variable(name, parse, help, default, blank, group, secret)
    VARIABLES[name] = var
    return var


def read(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of the declared variable ``name``."""
    return VARIABLES[name].read(environ)


def given(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the declared variable ``name`` is set to something (not its default)."""
    raw = (os.environ if environ is None else environ).get(VARIABLES[name].name)
    return raw is not None and raw.strip() != ""


# -- value kinds only environment variables and options need ------------------------------


def dsn(text: str) -> str:
    """A connection string (URL or key=value), as libpq parses it: refused when blank
    (never a silent fallback) or malformed. The reason never quotes the text, which may
    hold a password."""
    if not text.strip():
        raise ValueError("an empty DSN: give a connection string, or leave the option out")
    try:
        conninfo_to_dict(text)
    except ProgrammingError as exc:
        reason = re.sub(r'"[^"]*"', '"***"', " ".join(str(exc).split()))
        raise ValueError(f"not a valid DSN: {reason}") from None
    return text


def provider(text: str) -> str:
    kind = text.strip().partition(":")[0].lower()
    if kind not in ("embedded", "system", "docker"):
        raise ValueError(f"unknown provider {text!r}: use embedded, system or docker[:IMAGE]")
    return text.strip()


def directories(text: str) -> tuple[str, ...]:
    """Directories separated by ``os.pathsep`` (``:``)."""
    items = tuple(p for p in text.split(os.pathsep) if p.strip())
    if not items:
        raise ValueError("no directory named")
    return items


def output_path(text: str) -> str:
    """Where a report will be written: ``-`` (standard output) or a file whose directory
    exists or can be made and is writable. Checked before any work starts, so a bad path
    costs nothing: when the directory exists the file is opened for appending (and
    removed again if that created it), which is the only test that holds for root and on
    read-only or special file systems."""
    if text == "-":
        return text
    text = plausible(text)
    if not text.strip():
        raise ValueError("an empty path")
    try:
        return _writable(Path(text).expanduser(), text)
    except OSError as exc:
        raise ValueError(f"{text}: {exc.strerror or exc}") from None


def _writable(path: Path, text: str) -> str:
    if path.is_dir():
        raise ValueError(f"{text} is a directory, not a file")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{text}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{text}: cannot write in {parent}")
    if parent == path.parent:
        existed = path.exists()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ValueError(f"cannot write {text}: {exc.strerror or exc}") from None
        os.close(fd)
        if not existed:
            path.unlink()
    return str(path)


def output_dir(text: str) -> str:
    """A directory files will be written in: one that exists and is writable, or can be
    made under a writable ancestor. Checked before any work starts."""
    if not text.strip():
        raise ValueError("an empty path")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text} is not a directory")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{text}: cannot write in {parent}")
    return str(path)


MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


def secret(text: str) -> str:
    """A signing secret long enough for HS256."""
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"a JWT secret needs at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(this one has {len(text.encode())})"
        )
    return text


def url(text: str) -> str:
    """An http(s) base URL, without a trailing slash."""
    text = text.strip()
    if not text.startswith(("http://", "https://")) or len(text.split("//", 1)[1]) == 0:
        raise ValueError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def input_path(text: str) -> str:
    text = plausible(text)
    try:
        found = Path(text).expanduser().is_file()
    except OSError as exc:
        raise ValueError(f"{text}: {exc.strerror or exc}") from None
    if not found:
        raise ValueError(f"no such file: {text}")
    return str(Path(text).expanduser())


# -- the declarations, by the command family that reads them -------------------------------

D = "database"
declare(
    "HARNESS_DSN",
    dsn,
    "an existing server to run against, e.g. "
    "postgresql://user:pw@host/db; set but empty is an error",
    blank="error",
    group=D,
    secret=True,
)
declare(
    "HARNESS_POSTGRES",
    provider,
    "throwaway server: embedded (default), system or docker[:IMAGE]",
    group=D,
)
declare(
    "HARNESS_MIGRATIONS",
    directories,
    "migration directories separated by ':', applied in order (default: the packaged migrations)",
    group=D,
)
declare(
    "HARNESS_STATE_DIR",
    values.text,
    "where `harness db start` keeps its state file (default $XDG_RUNTIME_DIR or the temp dir)",
    group=D,
)
declare(
    "HARNESS_TEST_DSN", dsn, "the test suite's server (pytest --test-dsn)", group=D, secret=True
)

M = "purchases"
declare(
    "HARNESS_PURCHASE_FLOW",
    values.choice("atomic", "stepwise", "legacy"),
    "the purchase flow: atomic, stepwise or legacy (the rollback plan's switch)",
    "atomic",
    group=M,
)
declare(
    "HARNESS_APP_URL",
    values.text,
    "the application's base URL, for download links",
    MARKETPLACE_CONFIG["APP_URL"],
    group=M,
)
declare(
    "HARNESS_RECONCILE_OLDER_THAN",
    values.duration,
    "reconcile only purchases pending longer than this",
    values.parse_duration("5m"),
    group=M,
)

E = "email"
declare(
    "HARNESS_SMTP_URL",
    values.text,
    "smtp://[user:password@]host[:port][?starttls=1&timeout=S]",
    group=E,
    secret=True,
)
declare("HARNESS_EMAIL_FROM", values.text, "the sender of every email", group=E)
declare(
    "HARNESS_EMAIL_RETRY_ATTEMPTS",
    values.whole(1, 100),
    "attempts per email job before it is dead-lettered",
    EMAIL_CONFIG["RETRY_ATTEMPTS"],
    group=E,
)
declare(
    "HARNESS_EMAIL_RETRY_BACKOFF_MS",
    values.whole(0, 3_600_000),
    "wait after the first failed attempt, doubled after each further one",
    EMAIL_CONFIG["RETRY_BACKOFF_MS"],
    group=E,
)
declare(
    "HARNESS_EMAIL_LEASE_SECONDS",
    values.number(0.1, 86400),
    "how long a claimed job outlives a worker that stopped renewing it",
    60.0,
    group=E,
)
declare(
    "HARNESS_WORKER_CONCURRENCY", values.whole(1, 64), "sending threads of one worker", 1, group=E
)

V = "verify"
declare("HARNESS_VERIFY_ONLY", values.names, "run only these categories or check ids", group=V)
declare("HARNESS_VERIFY_JSON", output_path, "write the JSON report here", group=V)
declare("HARNESS_VERIFY_JUNIT", output_path, "write a JUnit XML report here", group=V)
declare(
    "HARNESS_VERIFY_SEED", values.whole(0, 2**63 - 1), "seed of every random choice", 0, group=V
)
declare(
    "HARNESS_VERIFY_HTTP",
    url,
    "a running application: the http checks drive it (its database is --dsn)",
    group=V,
)
declare("HARNESS_VERIFY_KEEP", values.flag, "leave the scratch databases", False, group=V)
declare("HARNESS_VERIFY_JOBS", values.whole(1, 32), "checks run at once", 3, group=V)
declare(
    "HARNESS_VERIFY_FLOW",
    values.choice("atomic", "stepwise", "legacy"),
    "the purchase flow the model.* checks drive (default: the project's, atomic and stepwise)",
    group=V,
)
declare(
    "HARNESS_VERIFY_SAVE_FAILURES",
    output_dir,
    "write each failing model.* sequence here, as a scenario file",
    group=V,
)
declare(
    "HARNESS_LINT_VERBOSE",
    values.flag,
    "list the expected drops in rollback files too",
    False,
    group=V,
)

W = "watch"
declare(
    "HARNESS_WATCH_SINCE",
    values.duration,
    "the window to judge",
    values.parse_duration("15m"),
    group=W,
)
declare("HARNESS_WATCH_BASELINE", output_path, "also write the JSON report here", group=W)
declare(
    "HARNESS_WATCH_PENDING_TIMEOUT",
    values.duration,
    "a purchase pending longer is stuck",
    values.parse_duration("5m"),
    group=W,
)
declare(
    "HARNESS_WATCH_MAX_STUCK_PENDING",
    values.non_negative_int,
    "stuck purchases allowed",
    0,
    group=W,
)
declare(
    "HARNESS_WATCH_MAX_ERROR_RATE",
    values.number(0, 1),
    "purchase error rate allowed",
    0.05,
    group=W,
)
declare(
    "HARNESS_WATCH_MIN_ATTEMPTS",
    values.non_negative_int,
    "attempts needed before the error rate is judged",
    20,
    group=W,
)
declare(
    "HARNESS_WATCH_MAX_DEAD_LETTERS", values.non_negative_int, "dead letters allowed", 0, group=W
)
declare(
    "HARNESS_WATCH_MAX_FAILING_JOBS",
    values.non_negative_int,
    "email jobs retrying allowed",
    10,
    group=W,
)
declare(
    "HARNESS_WATCH_MAX_VIOLATIONS",
    values.non_negative_int,
    "invariant violations allowed",
    0,
    group=W,
)
declare(
    "HARNESS_WATCH_MAX_MEAN_MS",
    values.number(0),
    "slowest statement's mean time allowed (with pg_stat_statements)",
    group=W,
)

G = "gate"
declare(
    "HARNESS_GATE_APPLY", values.flag, "apply the migrations to the target for real", False, group=G
)
declare("HARNESS_GATE_SKIP_TESTS", values.flag, "do not run pytest", False, group=G)
declare("HARNESS_GATE_ONLY", values.names, "run only these checklist items", group=G)
declare("HARNESS_GATE_SCENARIO", input_path, "the full-flow scenario file", group=G)
declare(
    "HARNESS_GATE_BASELINE",
    output_path,
    "where the monitoring baseline goes",
    "reports/watch-baseline.json",
    group=G,
)
declare("HARNESS_GATE_JOBS", values.whole(1, 32), "verify checks run at once", 3, group=G)
declare(
    "HARNESS_GATE_TESTS",
    values.text,
    "the team's test command for items 1 and 3 (its exit code and JUnit file decide)",
    group=G,
)
declare(
    "HARNESS_GATE_API_DOCS",
    values.text,
    "the team's API documentation (a file or directory) item 6 checks",
    group=G,
)
declare(
    "HARNESS_GATE_USER_DOCS",
    values.text,
    "the team's user documentation (a file or directory) item 7 checks",
    group=G,
)
declare(
    "HARNESS_GATE_TARGET",
    url,
    "the deployed application: item 9 drives it over HTTP with the scenario",
    group=G,
)
declare("HARNESS_GATE_MARKDOWN", output_path, "write a Markdown report here", group=G)
declare("HARNESS_GATE_JUNIT", output_path, "write a JUnit XML report here", group=G)
declare("HARNESS_GATE_JSON", output_path, "write the JSON report here", group=G)
declare(
    "HARNESS_GATE_ACTIVE",
    values.flag,
    "set by the gate for the pytest it runs, so the suite does not run a gate inside a gate",
    False,
    group=G,
)

S = "serve"
declare(
    "HARNESS_JWT_SECRET",
    secret,
    "the HS256 secret bearer tokens are signed with (at least 32 bytes); set but empty is an error",
    blank="error",
    group=S,
    secret=True,
)
declare(
    "HARNESS_SERVE_HOST",
    values.text,
    "the address `harness serve` listens on",
    "127.0.0.1",
    group=S,
)
declare("HARNESS_SERVE_PORT", values.whole(0, 65535), "its port (0: any free port)", 8000, group=S)
declare("HARNESS_SERVE_WORKERS", values.whole(1, 64), "its server worker processes", 1, group=S)
declare(
    "HARNESS_SERVE_POOL_SIZE",
    values.whole(1, 500),
    "database connections of each server worker",
    20,
    group=S,
)
declare(
    "HARNESS_RATE_LIMIT_PURCHASE",
    values.whole(0, 1_000_000),
    "purchases per user per minute (0: no limit)",
    MARKETPLACE_CONFIG["RATE_LIMIT_PURCHASE"],
    group=S,
)
declare(
    "HARNESS_RATE_LIMIT_CREDITS",
    values.whole(0, 1_000_000),
    "top-ups per user per minute (0: no limit)",
    MARKETPLACE_CONFIG["RATE_LIMIT_CREDITS"],
    group=S,
)

L = "load and bench"
declare(
    "HARNESS_SCENARIO",
    input_path,
    "scenario whose workspaces, partners and leads a load starts from",
    group=L,
)
declare("HARNESS_LOAD_USERS", values.whole(1, 10_000), "concurrent Locust users", 32, group=L)
declare("HARNESS_LOAD_SPAWN_RATE", values.number(0.001), "users started per second", group=L)
declare(
    "HARNESS_LOAD_DURATION",
    values.duration,
    "run time of a load",
    values.parse_duration("30s"),
    group=L,
)
declare("HARNESS_LOAD_PROCESSES", values.whole(1, 256), "Locust worker processes", group=L)
declare(
    "HARNESS_LOAD_FLOW",
    values.text,
    "atomic, stepwise, legacy, direct, or weights like atomic=2,direct=1",
    group=L,
)
declare(
    "HARNESS_LOAD_TARGET",
    url,
    "an application implementing the purchase route: `harness load` drives it over HTTP",
    group=L,
)
declare(
    "HARNESS_LOAD_RUN",
    values.text,
    "the name prefix of one HTTP load run's workspaces and leads (set by `harness load`)",
    group=L,
)
declare("HARNESS_LOAD_JSON", output_path, "write the load's JSON report here", group=L)
declare("HARNESS_LOAD_HTML", output_path, "Locust's HTML report", group=L)
declare("HARNESS_LOAD_KEEP_LOGS", values.flag, "keep Locust's work directory", False, group=L)
declare(
    "HARNESS_LOAD_INVARIANTS",
    values.flag,
    "the locustfile checks the invariants when the test stops",
    True,
    group=L,
)
declare(
    "HARNESS_LOAD_LEADS_PER_PURCHASE",
    values.whole(1, 1000),
    "leads in each load purchase",
    1,
    group=L,
)
declare(
    "HARNESS_LOAD_THINK_MS",
    values.whole(0, 600_000),
    "each Locust user's pause between purchases",
    0,
    group=L,
)
declare(
    "HARNESS_LOCUSTFILE",
    input_path,
    "the locustfile `harness load` runs (default the packaged one)",
    group=L,
)
declare("HARNESS_BENCH_JSON", output_path, "write the bench's JSON report here", group=L)
declare(
    "HARNESS_BENCH_CLIENTS",
    values.whole(1, 1000),
    "concurrent clients of every bench run",
    8,
    group=L,
)
declare("HARNESS_BENCH_DURATION", values.whole(1, 86400), "seconds per bench run", 10, group=L)
declare(
    "HARNESS_BENCH_PROFILE",
    values.flag,
    "profile each bench run with pg_stat_statements",
    False,
    group=L,
)
declare("HARNESS_BENCH_HTML", output_path, "write the bench's HTML report here", group=L)
declare(
    "HARNESS_BENCH_ROUNDS",
    values.whole(1, 100),
    "rounds each bench run is split into, taken in turn with the other runs",
    3,
    group=L,
)
declare(
    "HARNESS_BENCH_CLIENT_COUNTS",
    values.wholes(1, 1000),
    "the client counts the hot and spread bench runs are repeated at",
    (1, 8, 32),
    group=L,
)
declare(
    "HARNESS_BENCH_HISTORY",
    values.whole(0, 10_000_000),
    "purchases of history the bench's cost-with-history phase starts from, grown 10x and "
    "100x (0: skip the phase)",
    10_000,
    group=L,
)
declare(
    "HARNESS_BENCH_QUEUE_JOBS",
    values.whole(1, 1_000_000),
    "confirmation emails `harness bench --queue` delivers per measurement",
    2000,
    group=L,
)


T = "tests"
declare(
    "HARNESS_FUZZ_EXAMPLES",
    values.whole(1, 1_000_000),
    "examples per command in the command-line fuzz test (tests/test_cli_fuzz.py)",
    25,
    group=T,
)


def table() -> str:
    """The Markdown table of every variable (docs/cli.md carries it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARIABLES.values():
        default = var.default
        if hasattr(default, "total_seconds"):
            default = values.show_duration(default)
        elif isinstance(default, tuple):
            default = ",".join(map(str, default))
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `{var.name}` | {shown} | {var.help} |")
    return "\n".join(rows) + "\n"


__all__ = [
    "MAX_VALUE_LENGTH",
    "VARIABLES",
    "Variable",
    "declare",
    "given",
    "output_path",
    "plausible",
    "read",
    "secret",
    "table",
    "url",
]
