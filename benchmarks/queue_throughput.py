"""Benchmark (not a test): email jobs per second through one worker into a local SMTP sink.

Fills the outbox of a fresh scratch database with N credit-purchase jobs, serves an
aiosmtpd sink on loopback that accepts every message (in its own process by default, as
a real relay would be; ``--sink in-process`` shares the worker's process and GIL), runs
one worker until nothing is due, and prints one JSON object: jobs, seconds,
jobs_per_second and the settings.

    python benchmarks/queue_throughput.py [--jobs 2000] [--concurrency 1] [--batch-size 10]
        [--sink process|in-process] [--dsn DSN | --postgres embedded|system]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

from aiosmtpd.controller import Controller

from harness import db as database
from harness.db import servers
from harness.db.migrations import Migrator
from harness.outbox.queue import CreditPurchaseEmail, queue_credit_purchase_email
from harness.outbox.worker import Worker


class CountingSink:
    """Accepts every message and counts it."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        self.accepted += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sink_server(where: str) -> Iterator[tuple[str, CountingSink | None]]:
    """An SMTP sink on loopback for the block: its URL, and its handler when in-process."""
    port = free_port()
    if where == "in-process":
        sink = CountingSink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield f"smtp://127.0.0.1:{port}", sink
        finally:
            controller.stop()
        return
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the aiosmtpd sink did not start") from None
                time.sleep(0.05)
        yield f"smtp://127.0.0.1:{port}", None
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument(
        "--sink",
        choices=("process", "in-process"),
        default="process",
        help="run the SMTP sink in its own process (default) or in this one",
    )
    p.add_argument(
        "--dsn",
        default=os.environ.get("HARNESS_DSN"),
        help="an existing server (env HARNESS_DSN); a scratch database is made on it",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("HARNESS_POSTGRES"),
        help="throwaway server provider when no --dsn: embedded (default) or system",
    )
    args = p.parse_args()

    with (
        servers.server(dsn=args.dsn, postgres=args.postgres) as srv,
        database.scratch_database(srv.dsn, prefix="harness_bench") as dsn,
    ):
        with Migrator(dsn) as m:
            m.apply()
        data = CreditPurchaseEmail(
            email="buyer@example.com",
            name="Buyer",
            credits_amount=Decimal("100.00"),
            total_price=Decimal("100.00"),
            package_name="starter",
            new_balance=Decimal("100.00"),
        )
        with database.connect(dsn) as conn, conn.transaction():
            for _ in range(args.jobs):
                queue_credit_purchase_email(conn, data)

        with sink_server(args.sink) as (url, sink):
            worker = Worker(dsn, url, concurrency=args.concurrency, batch_size=args.batch_size)
            started = time.perf_counter()
            stats = worker.run(until="idle")
            seconds = time.perf_counter() - started
        report = {
            "benchmark": "queue_throughput",
            "jobs": args.jobs,
            "sent": stats.sent,
            "accepted_by_sink": sink.accepted if sink else None,
            "sink": args.sink,
            "seconds": round(seconds, 3),
            "jobs_per_second": round(stats.sent / seconds, 1),
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
            "postgres": f"{database.server_version(dsn)} via {srv.provider}",
        }
    print(json.dumps(report))
    ok = stats.sent == args.jobs and report["accepted_by_sink"] in (None, args.jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
