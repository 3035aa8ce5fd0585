"""Interrupting a real ``harness`` process at any moment leaves nothing behind: no
``harness-pg-*`` directory, no postgres process, no ``harness_verify_*`` database; SIGINT
and SIGTERM end it with one line and 130 / 143, SIGKILL is covered by the server's
watchdog.

Each test waits for a marker before it signals (the handler installed, the directory
initdb fills, the server's log, a line on stderr), never for a fixed time."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import db as database
from harness.db.watchdog import alive, processes_naming

HARNESS = Path(sys.executable).with_name("harness")
DEADLINE = 120.0


class Run:
    """A ``harness`` subprocess whose stderr is read line by line as it comes."""

    def __init__(self, args: list[str], tmp: Path, extra_env: dict[str, str] | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
        env.update(TMPDIR=str(tmp), HARNESS_STATE_DIR=str(tmp / "state"), **(extra_env or {}))
        cmd = [str(HARNESS)] if HARNESS.exists() else [sys.executable, "-m", "harness"]
        self.proc = subprocess.Popen(
            [*cmd, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while not ready():
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"harness ended ({self.proc.returncode}) before {what}: {self.lines}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {DEADLINE:.0f} s: {self.lines}")
            time.sleep(0.005)

    def wait_for_line(self, pattern: str) -> None:
        self.wait_for(f"a line matching {pattern!r}", lambda: self._matches(pattern))

    def _matches(self, pattern: str) -> bool:
        with self._changed:
            return any(re.search(pattern, line) for line in self.lines)

    def catches(self, sig: int) -> bool:
        """The process has a handler for ``sig`` (its SigCgt mask in /proc)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return False
        mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        return bool(mask & (1 << (sig - 1)))

    def finish(self) -> tuple[int, list[str]]:
        code = self.proc.wait(DEADLINE)
        self._reader.join(10)
        return code, self.lines


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A private temporary directory the harness puts its servers in (TMPDIR); as root,
    the server's account must be able to pass through it."""
    path = Path(tempfile.mkdtemp(prefix="harness-signals-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def workdirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("harness-pg-*"))


def assert_nothing_left(tmp: Path, seen: list[Path], postmaster: int | None = None) -> None:
    assert workdirs(tmp) == []
    for workdir in seen:
        assert processes_naming(str(workdir)) == [], f"a process of {workdir} survived"
    if postmaster is not None:
        assert not alive(postmaster), f"postmaster {postmaster} survived"


def wait_until_gone(tmp: Path, seen: list[Path], postmaster: int | None) -> None:
    """After a SIGKILL the watchdog reaps on its own time: poll, bounded."""
    deadline = time.monotonic() + 30
    while workdirs(tmp) or any(processes_naming(str(w)) for w in seen):
        assert time.monotonic() < deadline, "the watchdog did not reap the server"
        time.sleep(0.05)
    assert_nothing_left(tmp, seen, postmaster)


SIGNALS = [
    pytest.param(signal.SIGINT, 130, id="sigint"),
    pytest.param(signal.SIGTERM, 143, id="sigterm"),
]


def one_interrupted_line(lines: list[str], sig: int) -> None:
    assert lines, "nothing on stderr"
    assert lines[-1] == f"harness: interrupted by {signal.Signals(sig).name}; stopped", lines
    assert not any("Traceback" in line for line in lines), lines
    assert sum("interrupted" in line for line in lines) == 1, lines


@pytest.mark.parametrize("sig, status", SIGNALS)
def test_a_signal_in_the_first_second_exits_with_one_line_and_leaves_nothing(tmp, sig, status):
    run = Run(["verify"], tmp)
    # The handler is installed before the command modules load (most of a second).
    run.wait_for("the signal handler", lambda: run.catches(signal.SIGTERM))
    run.proc.send_signal(sig)
    code, lines = run.finish()
    assert code == status
    assert lines == [f"harness: interrupted by {signal.Signals(sig).name}; stopped"]
    assert_nothing_left(tmp, [])


def _initdb_running(tmp: Path) -> bool:
    return any((w / "data" / "PG_VERSION").exists() for w in workdirs(tmp))


def _server_starting(tmp: Path) -> bool:
    return any((w / "server.log").exists() for w in workdirs(tmp))


POINTS = [
    pytest.param(_initdb_running, id="during-initdb"),
    pytest.param(_server_starting, id="during-server-start"),
]


@pytest.mark.parametrize("sig, status", SIGNALS)
@pytest.mark.parametrize("point", POINTS)
def test_a_signal_while_the_server_is_made_leaves_no_directory_or_process(tmp, point, sig, status):
    run = Run(["verify"], tmp)
    run.wait_for(point.__name__, lambda: point(tmp))
    seen = workdirs(tmp)
    run.proc.send_signal(sig)
    code, lines = run.finish()
    assert code == status
    one_interrupted_line(lines, sig)
    assert_nothing_left(tmp, seen)


@pytest.mark.parametrize("sig, status", SIGNALS)
def test_a_signal_mid_check_on_a_throwaway_server_leaves_nothing(tmp, sig, status):
    run = Run(["verify", "--jobs", "2"], tmp)
    run.wait_for_line(r"^\[1/\d+\]")  # a first check has finished: the others are running
    seen = workdirs(tmp)
    postmaster = int((seen[0] / "data" / "postmaster.pid").read_text().split()[0])
    run.proc.send_signal(sig)
    code, lines = run.finish()
    assert code == status
    one_interrupted_line(lines, sig)
    assert_nothing_left(tmp, seen, postmaster)


def scratch_databases(admin_dsn: str) -> set[str]:
    with database.connect(admin_dsn) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'harness\\_verify\\_%'"
            )
        }


@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("sig, status", SIGNALS)
def test_a_signal_mid_check_on_a_dsn_drops_every_scratch_database_and_stops_the_checks(
    tmp, admin_dsn, sig, status, attempt
):
    before = scratch_databases(admin_dsn)
    run = Run(["verify", "--dsn", admin_dsn, "--jobs", "3"], tmp)
    run.wait_for_line(r"^\[\d+/\d+\]")
    # A check is under way with its own scratch databases.
    run.wait_for("a check's scratch database", lambda: len(scratch_databases(admin_dsn)) > 1)
    run.proc.send_signal(sig)
    code, lines = run.finish()
    assert code == status
    one_interrupted_line(lines, sig)  # the last line: no check reported after it
    assert scratch_databases(admin_dsn) - before == set()
    assert workdirs(tmp) == []


def test_sigkill_of_the_harness_leaves_no_server_thanks_to_the_watchdog(tmp):
    run = Run(["verify", "--jobs", "2"], tmp)
    run.wait_for_line(r"migrating template database")
    seen = workdirs(tmp)
    postmaster = int((seen[0] / "data" / "postmaster.pid").read_text().split()[0])
    run.proc.kill()
    assert run.finish()[0] == -signal.SIGKILL
    wait_until_gone(tmp, seen, postmaster)


def test_sigkill_during_initdb_leaves_nothing(tmp):
    run = Run(["verify"], tmp)
    run.wait_for("initdb", lambda: _initdb_running(tmp))
    seen = workdirs(tmp)
    run.proc.kill()
    run.finish()
    wait_until_gone(tmp, seen, None)
