"""``harness serve``: the purchase route over HTTP, on a migrated database.

With ``--dsn`` the application serves that database (its pending migrations applied
first); otherwise a scratch database ``harness_serve_*`` on the server ``harness db
start`` left running, or on a throwaway one, dropped when the server stops. The ready
line on stdout, ``harness serve: listening on URL``, says where; what the server runs on
is recorded in the state directory so that ``harness verify --http URL`` finds the
database without ``--dsn``.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from harness import db, env
from harness.cli.common import Target, add, command, database, note, say
from harness.db import servers
from harness.db.migrations import migrate
from harness.drivers.serve import tokens
from harness.drivers.serve.app import DEFAULT_POOL_SIZE, AppConfig
from harness.drivers.serve.limits import Limits
from harness.drivers.serve.server import serve
from harness.errors import UsageError
from harness.values import whole

READY = "harness serve: listening on {url}"


@dataclass(frozen=True)
class ServeSettings(Target):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    pool_size: int = DEFAULT_POOL_SIZE
    rate_limit_purchase: int = 10
    rate_limit_credits: int = 10
    issue_token: tuple[str, ...] | None = None
    token_ttl: int = tokens.DEFAULT_TTL_S
    dev_secret: bool = False
    access_log: bool = False
    keep: bool = False


def serve_state_file(url: str) -> Path:
    """Where a running ``harness serve`` at ``url`` records its database."""
    name = "serve-" + "".join(c if c.isalnum() else "_" for c in url) + ".json"
    return servers.state_file().parent / name


def serve_state(url: str) -> dict[str, Any] | None:
    """What the ``harness serve`` listening on ``url`` recorded, if it still runs."""
    path = serve_state_file(url.rstrip("/"))
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "dsn" in state else None


@contextlib.contextmanager
def _recorded(url: str, dsn: str) -> Iterator[None]:
    path = serve_state_file(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"url": url, "dsn": dsn}))
        path.chmod(0o600)  # the DSN may carry a password
    except OSError as exc:
        note(f"harness serve: cannot record the server in {path}: {exc}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _issue(s: ServeSettings) -> int:
    assert s.issue_token is not None
    secret = env.read("HARNESS_JWT_SECRET")
    if not secret:
        raise UsageError(
            "--issue-token needs the server's secret in HARNESS_JWT_SECRET "
            "(a server started with --dev-secret prints it)"
        )
    workspace, user = s.issue_token
    try:
        token = tokens.issue(secret, UUID(workspace), UUID(user), s.token_ttl)
    except ValueError:
        raise UsageError(
            f"--issue-token WORKSPACE USER: both must be UUIDs, got {workspace!r} {user!r}"
        ) from None
    say(token)
    return 0


def _secret(s: ServeSettings) -> str:
    secret = env.read("HARNESS_JWT_SECRET")
    if secret:
        return str(secret)
    if not s.dev_secret:
        raise UsageError(
            "harness serve refuses to start without HARNESS_JWT_SECRET (the HS256 secret "
            "its bearer tokens are signed with, at least 32 bytes); for a development "
            "server, --dev-secret generates one and prints it"
        )
    secret = tokens.new_secret()
    say(f"harness serve: development secret: HARNESS_JWT_SECRET={secret}")
    return secret


def _sigterm_exits() -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown: make that a SystemExit, so
    the scratch database and a throwaway server are cleaned up as after Ctrl-C."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):

            def stop(*_: object) -> None:
                raise SystemExit(143)

            signal.signal(signal.SIGTERM, stop)


def run_serve(s: ServeSettings) -> int:
    if s.issue_token:
        return _issue(s)
    secret = _secret(s)
    limits = Limits(purchase=s.rate_limit_purchase, credits=s.rate_limit_credits)
    _sigterm_exits()

    def ready(url: str) -> None:
        say(READY.format(url=url))

    with contextlib.ExitStack() as stack:
        if s.dsn:
            # It migrates the database it is given, then writes purchases into it.
            dsn = stack.enter_context(database(s, writes="serve (migrating, then serving)")).dsn
            where = f"database {db.redact(dsn)}"
        else:
            srv = stack.enter_context(database(s, writes="serve (a scratch database next to)"))
            dsn = stack.enter_context(
                db.scratch_database(srv.dsn, prefix="harness_serve", keep=s.keep)
            )
            where = f"scratch database {db.redact(dsn)} on {srv.provider}"
        done = migrate(dsn, s.migration_dirs)
        note(
            f"harness serve: {where}"
            + (f"; applied {', '.join(done)}" if done else "; migrations up to date")
        )
        config = AppConfig(dsn=dsn, secret=secret, pool_size=s.pool_size, limits=limits)
        limits_text = ", ".join(
            f"{b} {limits.of(b) or 'unlimited'}/min per user" for b in ("purchase", "credits")
        )
        note(f"harness serve: {s.workers} worker(s), pool {s.pool_size} each; {limits_text}")

        def on_ready(url: str) -> None:
            stack.enter_context(_recorded(url, dsn))
            ready(url)

        try:
            serve(config, s.host, s.port, s.workers, access_log=s.access_log, on_ready=on_ready)
        except KeyboardInterrupt:
            pass
        note("harness serve: stopped")
    return 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "serve",
        run_serve,
        ServeSettings,
        database=True,
        help="the purchase route over HTTP (FastAPI + uvicorn)",
        description="Serve the source design's purchase route: POST /api/marketplace/"
        "purchase, GET /api/marketplace/purchases/{id}, GET /api/marketplace/download/{id}, "
        "POST /api/credits/topup, GET /healthz, and the OpenAPI document at /openapi.json. "
        "With --dsn it serves that database (pending migrations applied first); otherwise "
        "a scratch database on the server `harness db start` left running, or on a "
        "throwaway one. Bearer tokens are HS256 JWTs signed with HARNESS_JWT_SECRET. "
        "Ctrl-C stops it cleanly.",
        epilog="Exit status: 0 stopped cleanly, 2 usage or connection error.",
    )
    add(p, "--host", env_var="HARNESS_SERVE_HOST", help="address to listen on (default 127.0.0.1)")
    add(
        p,
        "--port",
        type=whole(0, 65535),
        env_var="HARNESS_SERVE_PORT",
        help="port (default 8000; 0: any free port, shown on the ready line)",
    )
    add(
        p,
        "--workers",
        type=whole(1, 64),
        env_var="HARNESS_SERVE_WORKERS",
        help="server worker processes (default 1); the rate limits hold across them",
    )
    add(
        p,
        "--pool-size",
        type=whole(1, 500),
        env_var="HARNESS_SERVE_POOL_SIZE",
        help=f"database connections of each worker (default {DEFAULT_POOL_SIZE})",
    )
    add(
        p,
        "--rate-limit-purchase",
        type=whole(0, 1_000_000),
        metavar="N",
        env_var="HARNESS_RATE_LIMIT_PURCHASE",
        help="purchases per user per minute (default MARKETPLACE_CONFIG's "
        "RATE_LIMIT_PURCHASE; 0: no limit)",
    )
    add(
        p,
        "--rate-limit-credits",
        type=whole(0, 1_000_000),
        metavar="N",
        env_var="HARNESS_RATE_LIMIT_CREDITS",
        help="top-ups per user per minute (default RATE_LIMIT_CREDITS; 0: no limit)",
    )
    add(
        p,
        "--issue-token",
        nargs=2,
        metavar=("WORKSPACE", "USER"),
        help="print a bearer token for this workspace and user (signed with "
        "HARNESS_JWT_SECRET) and exit",
    )
    add(
        p,
        "--token-ttl",
        type=whole(1, 366 * 86400),
        default=tokens.DEFAULT_TTL_S,
        metavar="SECONDS",
        help=f"lifetime of an --issue-token token (default {tokens.DEFAULT_TTL_S})",
    )
    add(
        p,
        "--dev-secret",
        action="store_true",
        default=False,
        help="without HARNESS_JWT_SECRET, generate a secret and print it (development only)",
    )
    add(p, "--access-log", action="store_true", default=False, help="log every request")
    add(
        p,
        "--keep",
        action="store_true",
        default=False,
        help="keep the scratch database when the server stops",
    )
