"""What a check gets: the server, the migration set, and fresh migrated databases."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from harness import db

SCRATCH_PREFIX = "harness_verify"
STATEMENT_TIMEOUT = "60s"


@dataclass(frozen=True)
class HttpTarget:
    """A running application the ``http`` checks drive: its base URL, its database (where
    the checks build their workspaces and leads, and judge the invariants), and the
    secret its bearer tokens are signed with."""

    url: str
    dsn: str
    secret: str


class RunCancelled(Exception):
    """The run was interrupted: a check asked for a database or a connection after it
    was told to stop."""


def q(module: str, name: str) -> str:
    """A named check query from ``harness/sql/verify_<module>.sql``."""
    return db.query(f"verify_{module}", name)


@dataclass
class CheckContext:
    """The target of a verification run, shared by every check.

    ``new_database()`` clones the template (migrated once with ``migration_dirs``) into
    a scratch database ``harness_verify_<random>`` on the same server; every scratch
    database is dropped when the run ends unless ``keep``.
    """

    admin_dsn: str
    migration_dirs: list[Path]
    template: str
    seed: int = 0
    provider: str = ""
    server_version: str = ""
    migrations: list[str] = field(default_factory=list)
    keep: bool = False
    # The model.* checks: the flow they drive (None: the project's flows), and where a
    # failing sequence is written as a scenario file (--flow, --save-failures).
    purchase_flow: str | None = None
    save_failures: Path | None = None
    http: HttpTarget | None = None
    _made: list[tuple[str, str, str, bool]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _current: threading.local = field(default_factory=threading.local, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Stop the run: every later :meth:`new_database` or :meth:`connect` raises
        :class:`RunCancelled`, so the checks still running end at their next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise RunCancelled("the verification run was interrupted")

    def new_database(self, *, audit: bool = True) -> str:
        """DSN of a fresh clone of the migrated template, for this check alone.

        ``audit``: the check leaves only states a real flow could reach, so the
        invariant checker may judge it afterwards. Checks that drive one function in
        isolation (marking leads sold with no purchase items, say) pass False.
        """
        self._check_cancelled()
        name = db.scratch_name(SCRATCH_PREFIX)
        dsn = db.create_database(self.admin_dsn, name, self.template)
        if self._cancelled.is_set():  # interrupted while it was being made
            db.drop_database(self.admin_dsn, name)
            self._check_cancelled()
        with self._lock:
            self._made.append((name, dsn, getattr(self._current, "check_id", ""), audit))
        return dsn

    def databases(self, *, audited_only: bool = False) -> list[tuple[str, str, str]]:
        """(name, dsn, check id) of every scratch database made so far."""
        with self._lock:
            return [m[:3] for m in self._made if m[3] or not audited_only]

    def connect(self, dsn: str, **kwargs) -> psycopg.Connection:
        """An autocommit connection (the checks open their own transactions) whose
        statements give up after ``STATEMENT_TIMEOUT``: a hung candidate fails its check
        instead of hanging the suite."""
        self._check_cancelled()
        kwargs.setdefault("options", f"-c statement_timeout={STATEMENT_TIMEOUT}")
        return db.connect(dsn, **kwargs)

    def rng(self, check_id: str) -> random.Random:
        """A random source fixed by ``--seed`` and the check's id."""
        return random.Random(f"{self.seed}:{check_id}")

    @property
    def flows(self) -> tuple[str, ...]:
        """The purchase flows the model checks drive."""
        return (self.purchase_flow,) if self.purchase_flow else ("atomic", "stepwise")

    def save_failure(self, check_id: str, text: str) -> Path | None:
        """Write a failing check's sequence (a scenario file) into ``--save-failures``
        DIR as ``<check id>.toml``; None when no directory was given."""
        if self.save_failures is None:
            return None
        self.save_failures.mkdir(parents=True, exist_ok=True)
        path = self.save_failures / f"{check_id}.toml"
        path.write_text(text)
        return path

    @property
    def server_major(self) -> int:
        try:
            return int(self.server_version.split(".")[0].split()[0])
        except ValueError:
            return 0

    def drop_all(self) -> list[str]:
        """Drop every scratch database (not the template); returns their names."""
        with self._lock:
            made, self._made = self._made, []
        for name, *_ in made:
            db.drop_database(self.admin_dsn, name)
        return [m[0] for m in made]
