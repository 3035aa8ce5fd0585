"""Server providers: embedded and system clusters start, answer and vanish; Docker is
detected and its absence reported in one line."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from harness.cli import cli
from harness.db import servers
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
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the postmaster exits moments after pg_ctl returns
            os.kill(pid, 0)
            time.sleep(0.1)


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
