"""Running the application: uvicorn in the foreground (``harness serve``), in a thread of
the calling process (the pytest plugin, the tests), or ``harness serve`` as a child
process (``harness load --http``).

The listening socket is bound before uvicorn starts, so port 0 (any free port) works
and the URL is known before the first request; with more than one worker uvicorn's
supervisor shares that socket with worker processes that build the application from
the environment (:func:`harness.drivers.serve.app.app_from_env`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import uvicorn

from harness.drivers.serve import contract
from harness.drivers.serve.app import AppConfig, State, create_app
from harness.errors import HarnessError

READY = re.compile(r"listening on (https?://\S+)")
START_TIMEOUT_S = 60


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: the system picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise HarnessError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def preflight(config: AppConfig) -> None:
    """Open what a worker opens (its pool, the rate limit tables) once and close it: a
    bad DSN or a missing migration is one clear error before anything listens."""
    State(config).close()


def worker_environment(config: AppConfig) -> dict[str, str]:
    """The variables a worker process builds its application from."""
    out = {
        "HARNESS_DSN": config.dsn,
        "HARNESS_JWT_SECRET": config.secret,
        "HARNESS_SERVE_POOL_SIZE": str(config.pool_size),
        "HARNESS_RATE_LIMIT_PURCHASE": str(config.limits.purchase),
        "HARNESS_RATE_LIMIT_CREDITS": str(config.limits.credits),
    }
    if config.flow:
        out["HARNESS_PURCHASE_FLOW"] = config.flow
    return out


def serve(
    config: AppConfig,
    host: str,
    port: int,
    workers: int = 1,
    *,
    access_log: bool = False,
    on_ready: Callable[[str], None] = lambda _url: None,
) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM); uvicorn finishes the requests in
    flight before it returns."""
    preflight(config)
    sock = bind(host, port)
    options: dict[str, Any] = {"log_level": "warning", "access_log": access_log}
    try:
        if workers == 1:
            server = uvicorn.Server(uvicorn.Config(create_app(config), **options))
            on_ready(url_of(sock))
            server.run(sockets=[sock])
            return
        # The supervisor's worker processes build the application from the environment
        # and accept on the socket bound here (uvicorn's --fd).
        os.environ.update(worker_environment(config))
        on_ready(url_of(sock))
        uvicorn.run(
            "harness.drivers.serve.app:app_from_env",
            factory=True,
            workers=workers,
            fd=sock.fileno(),
            **options,
        )
    finally:
        sock.close()


@contextlib.contextmanager
def running(config: AppConfig, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The application served by uvicorn in a thread of this process, for the block; its
    base URL. For tests and the pytest plugin."""
    preflight(config)
    sock = bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="warning", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="harness-serve", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise HarnessError("harness serve did not start (see the log above)")
            time.sleep(0.02)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class ServeProcess:
    """``harness serve`` as a child process: started with the given options, its URL read
    from its ready line, its health awaited; stopped with SIGINT (a clean shutdown)."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.env = env
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def __enter__(self) -> ServeProcess:
        cmd = [sys.executable, "-m", "harness", "serve", *self.args]
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            found = READY.search(line)
            if found:
                self.url = found.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise HarnessError(
                "harness serve did not start: " + " | ".join(self.output[-8:] or ["no output"])
            )
        # Keep reading its output so that a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, name="serve-output", daemon=True).start()
        wait_healthy(self.url)
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            del self.output[:-200]

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(2)  # SIGINT, as Ctrl-C: finish in-flight requests, clean up
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_healthy(url: str, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until ``GET /healthz`` answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + contract.HEALTH, timeout=5)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise HarnessError(f"{url}{contract.HEALTH} did not answer 200: {last}")


__all__ = ["ServeProcess", "bind", "preflight", "running", "serve", "wait_healthy"]
