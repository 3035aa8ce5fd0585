"""The throwaway server's watchdog: stops the server and deletes its directory when the
process that started it goes away, however it goes (SIGKILL included).

The harness starts this file as a script (``python -I -S watchdog.py WORKDIR``) in a
session of its own, *before* ``initdb`` runs, and keeps the write end of a pipe to its
standard input. The kernel closes that pipe when the harness dies, for any reason; the
watchdog reads end-of-file and reaps: every process whose command line names the work
directory (``initdb``, ``pg_ctl``, the postmaster, which ``pg_ctl`` daemonises so that no
parent-death signal reaches it) is sent SIGQUIT (PostgreSQL's immediate shutdown), then
SIGKILL, and the directory is deleted. ``detach`` on the pipe disarms it (``harness db
start`` keeps its server); ``group N`` names a process group to kill first (the one
``initdb`` and ``pg_ctl`` run in).

It imports nothing but the standard library, so that it starts in milliseconds and runs
under any interpreter that can run the harness. :func:`reap` is also what the harness
itself calls when it stops a server in the ordinary way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

# PostgreSQL's immediate shutdown; then no more patience.
GRACE_SECONDS = 3.0
GIVE_UP_SECONDS = 20.0


def processes_naming(path: str) -> list[int]:
    """Live processes (other than this one) whose command line mentions ``path``."""
    needle = os.fsencode(path.rstrip("/") + "/")
    bare = os.fsencode(path.rstrip("/"))
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: only the postmaster.pid route is left
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(needle) or a == bare for a in args):
            found.append(int(entry))
    return found


def _postmaster(workdir: str) -> int | None:
    try:
        with open(os.path.join(workdir, "data", "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited: it only waits for its parent to read its status.
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    return True


def reap(workdir: str, groups: tuple[int, ...] = (), spare: tuple[int, ...] = ()) -> bool:
    """Stop every process of the server in ``workdir`` and delete the directory.

    ``groups``: process groups to kill first; ``spare``: processes to leave alone (the
    watchdog, when the harness reaps by itself). True when nothing is left. Safe to call
    twice, and on a directory that never held a server (initdb interrupted) or no longer
    exists."""
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    started = time.monotonic()
    quit_sent: set[int] = set()
    while True:
        pids = set(processes_naming(workdir))
        pm = _postmaster(workdir)
        if pm is not None:
            pids.add(pm)
        pids = {p for p in pids if p not in spare and alive(p)}
        if not pids:
            break
        waited = time.monotonic() - started
        for pid in pids:
            if pid not in quit_sent:
                quit_sent.add(pid)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGQUIT)
            elif waited > GRACE_SECONDS:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if waited > GIVE_UP_SECONDS:
            break
        time.sleep(0.02)
    for _ in range(50):
        shutil.rmtree(workdir, ignore_errors=True)
        if not os.path.lexists(workdir):
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str]) -> int:
    workdir = argv[1]
    # A Ctrl-C or a hang-up meant for the harness is not for us: we act on end-of-file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    groups: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit  # told to go: clean up first

    signal.signal(signal.SIGTERM, on_term)
    try:
        for line in sys.stdin.buffer:
            word, _, arg = line.decode("ascii", "replace").strip().partition(" ")
            if word == "detach":
                return 0
            if word == "group" and arg.isdigit():
                groups.append(int(arg))
    except SystemExit:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reap(workdir, tuple(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
