"""``harness bench --queue``: the email worker's throughput against its ceiling, measured in
the same run on the same machine.

The jobs are real: N purchases made by ``purchase_leads_atomic`` queue N confirmation
emails. The sink is a real SMTP server (aiosmtpd) on loopback, in a process of its own so
that it shares no interpreter lock with what it measures; it records the Message-ID of every
message it accepts. For each number of worker processes (1, then 4):

* the ceiling: the same jobs' messages, built by the project's mailer (``render``) and sent
  over one SMTP connection per process by a bare loop, with no database at all;
* the worker: that many worker processes (:class:`~harness.outbox.worker.Worker`, the
  ``harness worker`` machinery with its default settings) deliver the queued jobs until
  none is due.

Each process is started and connected before a common start signal; a phase lasts from that
signal to the last process's finish. The sink's Message-IDs prove every job delivered
exactly once; a job delivered twice or never is an error, not a figure.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from harness import db
from harness.errors import HarnessError
from harness.outbox.mailer import message_id_for

PROCESSES = (1, 4)
JOBS = 2000
ROUNDS = 3  # each measurement in this many parts, taken in turn with the others
MIN_ROUND_JOBS = 200
TARGET_RATIO = 0.7  # worker / ceiling, one process
TARGET_RATE = 300.0  # emails per second, one worker process
START_TIMEOUT = 60.0
WARMUP_ID = "<warmup@harness-bench>"  # the ceiling's first message, sent before timing
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.I | re.M)


# -- the sink --------------------------------------------------------------------------


class _Recorder:
    """aiosmtpd handler: accepts every message and keeps its Message-ID."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.original_content or envelope.content
        head = content.split(b"\r\n\r\n", 1)[0] if isinstance(content, bytes) else b""
        found = _MESSAGE_ID.search(head)
        self.message_ids.append(found.group(1).decode() if found else "")
        return "250 OK"

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # Offers PIPELINING, as the relays a worker delivers to in production do (Postfix,
        # Exim, the cloud providers); aiosmtpd answers pipelined commands in order but
        # does not say so itself.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (it is, with uvicorn[standard]): the sink
    shares the CPUs with what it measures, so the less each message costs it, the less it
    takes from the sender."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _sink_main(port: int, ready: Any, stop: Any, out: Connection) -> None:
    from aiosmtpd.controller import Controller

    recorder = _Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, loop=_event_loop())
    controller.start()
    try:
        ready.set()
        stop.wait()
    finally:
        controller.stop()
        out.send(recorder.message_ids)
        out.close()


class Sink:
    """The SMTP sink in its own process, for one phase: its URL while it runs, and the
    Message-IDs it accepted once stopped."""

    def __init__(self, ctx: Any) -> None:
        self.port = _free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_sink_main, args=(self.port, self._ready, self._stop, send), daemon=True
        )
        self._proc.start()
        send.close()
        if not self._ready.wait(START_TIMEOUT):
            self._proc.kill()
            raise HarnessError("the SMTP sink did not start")

    def stop(self) -> list[str]:
        self._stop.set()
        ids: list[str] = self._recv.recv() if self._recv.poll(START_TIMEOUT) else []
        self._proc.join(START_TIMEOUT)
        return ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the two kinds of process ----------------------------------------------------------


def _ceiling_main(jobs: list[dict[str, Any]], url: str, go: Any, out: Connection) -> None:
    """Render and send ``jobs`` over one connection, after the start signal, as the worker
    renders and addresses them."""
    from harness.outbox.mailer import Mailer, SmtpSettings, message_id_for, recipient_of, render

    settings = SmtpSettings.from_url(url)
    with Mailer(settings) as mailer:
        first = jobs[0]
        warmup = render(
            first["kind"],
            first["payload"],
            message_id=WARMUP_ID,
            date=first["created_at"],
            sender=settings.sender,
        )
        mailer.send(warmup, recipient_of(first["kind"], first["payload"]))  # connect first
        go.wait()
        cpu = time.process_time()
        for job in jobs:
            msg = render(
                job["kind"],
                job["payload"],
                message_id=message_id_for(job),
                date=job["created_at"],
                sender=settings.sender,
            )
            mailer.send(msg, recipient_of(job["kind"], job["payload"]))
        out.send((time.monotonic(), len(jobs), time.process_time() - cpu))
    out.close()


def _worker_main(dsn: str, url: str, go: Any, out: Connection) -> None:
    """One worker process, with ``harness worker``'s defaults, run until nothing is due."""
    from harness.outbox.worker import Worker

    worker = Worker(dsn, url)
    with db.connect(dsn):  # connect once before the signal, as a running worker would be
        pass
    go.wait()
    cpu = time.process_time()
    stats = worker.run(until="idle")
    out.send((time.monotonic(), stats.sent, time.process_time() - cpu))
    out.close()


def _phase(
    ctx: Any, target: Callable[..., None], args_per_process: Sequence[tuple[Any, ...]]
) -> tuple[float, int, float]:
    """Start one process per argument tuple, release them together, and return the
    seconds from the release to the last finish, the messages they reported, and the CPU
    seconds they used."""
    go = ctx.Event()
    procs, pipes = [], []
    for args in args_per_process:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=target, args=(*args, go, send), daemon=True)
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    time.sleep(_settle(len(procs)))  # spawned interpreters importing harness
    started = time.monotonic()
    go.set()
    finished, count, cpu = started, 0, 0.0
    try:
        for recv, p in zip(pipes, procs, strict=True):
            try:
                end, n, used = recv.recv()
            except EOFError:
                p.join(5)
                raise HarnessError(
                    f"a bench process ({target.__name__}) died with exit code {p.exitcode}"
                ) from None
            finished, count, cpu = max(finished, end), count + n, cpu + used
    finally:
        for p in procs:
            p.join(START_TIMEOUT)
            if p.is_alive():
                p.kill()
    return finished - started, count, cpu


def _settle(processes: int) -> float:
    """Time for spawned processes to import and connect before the start signal; the
    processes also wait for the signal, so this only has to be long enough."""
    return 2.0 + 0.5 * processes


# -- the command -----------------------------------------------------------------------


def queue_jobs(dsn: str, first: int, count: int) -> list[dict[str, Any]]:
    """``count`` purchases of leads ``first..`` (purchase_leads_atomic), hence ``count``
    queued confirmation jobs; the jobs as the worker will read them."""
    from harness.drivers.bench import SPREAD

    with db.connect(dsn) as conn:
        made = db.scalar(
            conn,
            db.query("bench", "queue_purchases"),
            {"first": first, "last": first + count - 1, "spread": SPREAD},
        )
        if made != count:
            raise HarnessError(f"queued {made} confirmation emails, not {count}")
        return db.fetch_all(conn, "bench", "queued_jobs")


def _check_deliveries(
    what: str, ids: list[str], expected: set[str], problems: list[str]
) -> dict[str, int]:
    seen = Counter(i for i in ids if i != WARMUP_ID)
    twice = sum(1 for n in seen.values() if n > 1)
    missing = len(expected - set(seen))
    stray = len(set(seen) - expected)
    if twice or missing or stray:
        problems.append(
            f"{what}: {twice} job(s) delivered more than once, {missing} never, "
            f"{stray} unknown Message-ID(s)"
        )
    return {"delivered": sum(seen.values()), "delivered_twice": twice, "missing": missing}


def run_queue_bench(
    dsn: str,
    jobs: int = JOBS,
    processes: Sequence[int] = PROCESSES,
    rounds: int = ROUNDS,
    note: Callable[..., None] = lambda *a: None,
) -> dict[str, Any]:
    """The ceiling and the worker at each number of processes; the report (``problems``
    lists any job delivered twice or never).

    The ``jobs`` of each measurement are delivered in ``rounds`` parts, each part's ceiling
    and worker measured in turn with the other process counts', so that a change in the
    machine's load falls on every figure alike."""
    from harness.drivers.bench import SPREAD, prepare

    ctx = multiprocessing.get_context("spawn")
    rounds = max(1, min(rounds, jobs // MIN_ROUND_JOBS))
    parts = [jobs // rounds + (1 if i < jobs % rounds else 0) for i in range(rounds)]
    prepare(dsn, jobs * len(processes))
    problems: list[str] = []
    totals = {
        n: dict.fromkeys(("seconds", "sent", "cpu", "wseconds", "wsent", "wcpu"), 0.0)
        for n in processes
    }
    checks: dict[int, dict[str, dict[str, int]]] = {n: {} for n in processes}
    per_round: dict[int, dict[str, list[float]]] = {
        n: {"worker": [], "ceiling": []} for n in processes
    }
    load_before = os.getloadavg()
    first_lead = 1
    for r, part in enumerate(parts):
        for n in processes:
            label = f"{n} process(es)" + (f", round {r + 1} of {rounds}" if rounds > 1 else "")
            rows = queue_jobs(dsn, first_lead, part)
            first_lead += part
            expected = {message_id_for(row) for row in rows}
            slices = [rows[k::n] for k in range(n)]

            sink = Sink(ctx)
            try:
                note(f"bench --queue: ceiling, {label}: {part} emails, no database")
                seconds, sent, cpu = _phase(ctx, _ceiling_main, [(x, sink.url) for x in slices])
            finally:
                ids = sink.stop()
            _add(
                checks[n],
                "ceiling",
                _check_deliveries(f"ceiling, {label}", ids, expected, problems),
            )

            sink = Sink(ctx)
            try:
                note(f"bench --queue: worker, {label}: {part} queued emails")
                wseconds, wsent, wcpu = _phase(ctx, _worker_main, [(dsn, sink.url)] * n)
            finally:
                ids = sink.stop()
            _add(
                checks[n], "worker", _check_deliveries(f"worker, {label}", ids, expected, problems)
            )
            with db.connect(dsn) as conn:
                unsettled = db.scalar(conn, db.query("bench", "unsent_jobs"))
            if unsettled:
                problems.append(f"worker, {label}: {unsettled} job(s) not sent")
            t = totals[n]
            for key, value in zip(
                ("seconds", "sent", "cpu", "wseconds", "wsent", "wcpu"),
                (seconds, sent, cpu, wseconds, wsent, wcpu),
                strict=True,
            ):
                t[key] += value
            per_round[n]["ceiling"].append(round(sent / seconds, 1))
            per_round[n]["worker"].append(round(wsent / wseconds, 1))
            note(
                f"bench --queue: {label}: worker {wsent / wseconds:,.0f}/s, "
                f"ceiling {sent / seconds:,.0f}/s"
            )
    report: dict[str, Any] = {
        "jobs": jobs,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "by_processes": {},
    }
    for n in processes:
        t = totals[n]
        worker_rate = round(t["wsent"] / t["wseconds"], 1)
        ceiling_rate = round(t["sent"] / t["seconds"], 1)
        report["by_processes"][str(n)] = {
            "processes": n,
            "worker_emails_per_second": worker_rate,
            "ceiling_emails_per_second": ceiling_rate,
            "worker_vs_ceiling": round(worker_rate / ceiling_rate, 2) if ceiling_rate else None,
            "worker_round_rates": per_round[n]["worker"],
            "ceiling_round_rates": per_round[n]["ceiling"],
            "worker_seconds": round(t["wseconds"], 3),
            "ceiling_seconds": round(t["seconds"], 3),
            # CPU the processes used per email: what a quiet machine's rate depends on.
            "worker_cpu_ms_per_email": round(1000 * t["wcpu"] / max(t["wsent"], 1), 3),
            "ceiling_cpu_ms_per_email": round(1000 * t["cpu"] / max(t["sent"], 1), 3),
            "worker": checks[n]["worker"],
            "ceiling": checks[n]["ceiling"],
        }
    keys = ("worker_emails_per_second", "ceiling_emails_per_second", "worker_vs_ceiling")
    one = report["by_processes"].get("1")
    if one:
        for key in keys:
            report[key] = one[key]
    more = [v for k, v in report["by_processes"].items() if k != "1"]
    if more:
        report[f"workers_{more[-1]['processes']}"] = {key: more[-1][key] for key in keys}
    report["targets"] = {"worker_vs_ceiling": TARGET_RATIO, "worker_emails_per_second": TARGET_RATE}
    report["spread"] = SPREAD
    report["problems"] = problems
    report["load_average"] = {"start": list(load_before), "end": list(os.getloadavg())}
    return report


def _add(into: dict[str, dict[str, int]], phase: str, counts: dict[str, int]) -> None:
    into[phase] = {k: into.get(phase, {}).get(k, 0) + v for k, v in counts.items()}


__all__ = ["JOBS", "PROCESSES", "run_queue_bench"]
