"""Benchmark (not a test): the email worker's throughput against its ceiling.

The same measurement as ``harness bench --queue`` (harness/drivers/queue_bench.py), kept
as a script for runs without the command line: N confirmation emails queued by real
purchases, delivered into an aiosmtpd sink in its own process by one worker process and
then four, each against a bare send loop's ceiling measured in the same run. Prints the
report as one JSON object; exits 1 when a job was delivered twice or never.

    python benchmarks/queue_throughput.py [--jobs 2000] [--rounds 3]
        [--dsn DSN | --postgres embedded|system]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from harness import db as database
from harness.db import servers
from harness.db.migrations import migrate
from harness.drivers import queue_bench


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=queue_bench.JOBS)
    p.add_argument("--rounds", type=int, default=queue_bench.ROUNDS)
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
        migrate(dsn)
        report = queue_bench.run_queue_bench(
            dsn, args.jobs, rounds=args.rounds, note=lambda *a: print(*a, file=sys.stderr)
        )
        report["postgres"] = f"{database.server_version(dsn)} via {srv.provider}"
    print(json.dumps(report))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
