"""The email worker against real SMTP servers on loopback (aiosmtpd): retries with
backoff, dead letters, leases that survive a SIGKILLed worker, no two workers sending one
job at once, graceful SIGTERM, cancellation, and drain() for the scenario runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest
from conftest import ROOT
from smtp_servers import Sink, down_url, running

from harness.cli import cli
from harness.db import connect
from harness.errors import UsageError
from harness.outbox.queue import (
    CreditPurchaseEmail,
    get_job,
    queue_credit_purchase_email,
    request_cancel,
)
from harness.outbox.worker import DrainStats, Worker, WorkerSettings, drain

FAST = {"retry_backoff_ms": 20, "lease_seconds": 1.0}


def enqueue(conn, n=1):
    return [
        queue_credit_purchase_email(
            conn,
            CreditPurchaseEmail(
                email=f"buyer{i}@example.com",
                name=f"Buyer {i}",
                credits_amount=Decimal("10.00"),
                total_price=Decimal("10.00"),
                package_name="starter",
                new_balance=Decimal("10.00"),
            ),
        )
        for i in range(n)
    ]


def mid(conn, job_id):
    """The Message-ID every delivery of the job carries: its message_uuid (0005)."""
    uid = conn.execute("SELECT message_uuid FROM email_jobs WHERE id = %s", (job_id,)).fetchone()
    return f"<{uid[0]}@harness>"


def jobs(conn):
    return {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT id, status::text, attempts, last_error FROM email_jobs ORDER BY id"
        )
    }


def worker_process(db, url, *args):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "worker",
            "--dsn",
            db,
            "--smtp-url",
            url,
            "--poll-interval",
            "0.05",
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_in_thread(fn):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    t.start()
    return t, result


# -- retries, backoff, dead letters ------------------------------------------------------------


def test_a_job_refused_twice_is_delivered_on_the_third_attempt_with_backoff(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(refuse_first=2)
    with running(sink) as url:
        started = time.monotonic()
        stats = drain(db, url, retry_attempts=3, retry_backoff_ms=100)
        elapsed = time.monotonic() - started
    assert (stats.sent, stats.retried, stats.dead, stats.remaining) == (1, 2, 0, 0)
    assert sink.data_commands == 3
    assert sink.message_ids() == {mid(conn, job_id): 1}
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("sent", 3)
    assert "451" in job.last_error  # the last failure stays on record
    assert elapsed >= 0.1 + 0.2  # waited out 100 ms, then 200 ms


def test_a_job_whose_server_stays_down_is_dead_after_the_configured_attempts(conn, db):
    ids = enqueue(conn, 3)
    stats = drain(db, down_url(), retry_attempts=4, retry_backoff_ms=5)
    assert (stats.sent, stats.dead, stats.retried, stats.remaining) == (0, 3, 9, 0)
    for status, attempts, error in jobs(conn).values():
        assert (status, attempts) == ("dead", 4)
        assert "ConnectionRefusedError" in error
    assert set(jobs(conn)) == set(ids)  # nothing lost


@pytest.mark.parametrize("pipeline", [True, False], ids=["libpq-pipeline", "no-pipeline"])
def test_nothing_is_lost_when_some_deliveries_fail_and_others_succeed(
    conn, db, monkeypatch, pipeline
):
    # Without pipeline mode (libpq before 14) the attempt's statement simply runs first.
    monkeypatch.setattr("harness.outbox.worker.PIPELINE", pipeline)
    ids = enqueue(conn, 12)
    sink = Sink(refuse_first=5)
    with running(sink) as url:
        stats = drain(db, url, retry_attempts=2, retry_backoff_ms=5, batch_size=3)
    settled = jobs(conn)
    assert set(settled) == set(ids)
    assert {s for s, _, _ in settled.values()} <= {"sent", "dead"}
    sent = [i for i, (s, _, _) in settled.items() if s == "sent"]
    assert stats.sent == len(sent) == len(sink.deliveries) == sum(sink.message_ids().values())
    assert stats.sent + stats.dead == 12


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_a_permanent_refusal_is_dead_at_once(conn, db, pipelining):
    (job_id,) = enqueue(conn)

    class Refuses(Sink):
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            return "550 5.1.1 No such user"

    with running(Refuses(pipelining=pipelining)) as url:
        stats = drain(db, url, retry_attempts=3, retry_backoff_ms=5)
    assert stats.dead == 1 and stats.retried == 0
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("dead", 1)
    assert "550" in job.last_error and "No such user" in job.last_error


def test_backoff_doubles_from_the_base_and_settings_come_from_arguments_then_env(monkeypatch):
    s = WorkerSettings.resolve(retry_attempts=5, retry_backoff_ms=1000)
    assert [s.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert s.backoff(40) == 3600.0
    monkeypatch.setenv("HARNESS_EMAIL_RETRY_ATTEMPTS", "7")
    monkeypatch.setenv("HARNESS_EMAIL_RETRY_BACKOFF_MS", "15")
    s = WorkerSettings.resolve()
    assert (s.retry_attempts, s.retry_backoff_ms) == (7, 15)
    assert WorkerSettings.resolve(retry_attempts=2).retry_attempts == 2
    monkeypatch.setenv("HARNESS_EMAIL_RETRY_ATTEMPTS", "0")
    with pytest.raises(UsageError, match="at least 1"):
        WorkerSettings.resolve()


def test_drain_without_waiting_for_backoff_stops_with_the_job_still_queued(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(refuse_first=1)
    with running(sink) as url:
        stats = drain(db, url, wait_for_backoff=False, retry_backoff_ms=60_000)
        assert (stats.sent, stats.retried, stats.remaining) == (0, 1, 1)
        assert get_job(conn, job_id).status == "queued"
        conn.execute("UPDATE email_jobs SET run_at = now()")
        assert drain(db, url).sent == 1


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_messages_carry_the_jobs_message_id_and_both_bodies(conn, db, pipelining):
    ids = enqueue(conn, 2)
    sink = Sink(pipelining=pipelining)
    with running(sink) as url:
        stats = drain(db, url)
    assert isinstance(stats, DrainStats) and stats.sent == 2
    assert sink.message_ids() == {mid(conn, i): 1 for i in ids}
    msg = sink.deliveries[0].message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.get_payload()] == ["text/plain", "text/html"]
    assert sink.deliveries[0].recipients == ("buyer0@example.com",)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_credentials_from_the_url_are_used(conn, db):
    enqueue(conn)
    sink = Sink()
    with running(sink, users={"mailer": "s3cret"}) as url:
        assert drain(db, url + "?timeout=5", retry_attempts=1).dead == 1  # 530: log in first
        conn.execute("UPDATE email_jobs SET status = 'queued', dead_at = NULL, attempts = 0")
        with_login = url.replace("smtp://", "smtp://mailer:s3cret@") + "?timeout=5"
        assert drain(db, with_login).sent == 1
    assert "530" in get_job(conn, 1).last_error
    assert len(sink.deliveries) == 1


# -- leases and concurrent workers ----------------------------------------------------------


def test_a_worker_killed_mid_send_loses_its_job_to_another_worker_after_the_lease(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(stall_first=1)
    with running(sink) as url:
        proc = worker_process(db, url, "--lease", "1")
        try:
            assert sink.stalling.wait(15), proc.stderr.read() if proc.poll() else "no DATA"
            job = get_job(conn, job_id)
            assert (job.status, job.attempts) == ("sending", 1)
            assert f":{proc.pid}:" in job.locked_by
        finally:
            proc.kill()
            proc.wait()
        lease_end = get_job(conn, job_id).locked_until
        stats = drain(db, url, **FAST)
    assert (stats.sent, stats.recovered) == (1, 1)
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("sent", 2)
    assert job.sent_at >= lease_end  # not taken over before the lease ran out
    assert "lease expired" in job.last_error and str(proc.pid) in job.last_error
    assert sink.message_ids() == {mid(conn, job_id): 1}


def test_a_live_worker_keeps_its_lease_through_a_send_longer_than_the_lease(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(stall_first=1)
    with running(sink) as url:
        slow, slow_result = run_in_thread(lambda: drain(db, url, lease_seconds=0.6))
        assert sink.stalling.wait(10)
        holder = get_job(conn, job_id).locked_by
        other, other_result = run_in_thread(lambda: drain(db, url, lease_seconds=0.6))
        time.sleep(1.5)  # well past the first lease: only the heartbeat keeps the claim
        job = get_job(conn, job_id)
        assert (job.status, job.locked_by, job.attempts) == ("sending", holder, 1)
        sink.release()
        slow.join(10)
        other.join(10)
    assert slow_result["value"].sent == 1 and other_result["value"].sent == 0
    assert other_result["value"].recovered == 0
    assert sink.message_ids() == {mid(conn, job_id): 1}


def test_a_lost_attempt_that_was_the_last_one_is_dead_lettered(conn, db):
    (job_id,) = enqueue(conn)
    conn.execute(
        "UPDATE email_jobs SET status = 'sending', attempts = 2, locked_by = 'gone', "
        "locked_until = now() - interval '1 second'"
    )
    stats = drain(db, down_url(), retry_attempts=2)
    assert (stats.dead, stats.recovered) == (1, 1)
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("dead", 2) and "worker gone" in job.last_error


def test_two_workers_running_together_never_send_the_same_job(conn, db):
    ids = enqueue(conn, 60)
    sink = Sink(delay=0.01)
    with running(sink) as url:
        procs = [
            worker_process(db, url, "--once", "--batch-size", "2", "--concurrency", "2", "--json")
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    reported = [json.loads(out)["sent"] for out, _ in outs]
    assert sum(reported) == 60 and all(n > 0 for n in reported)  # both workers worked
    assert sink.message_ids() == {mid(conn, i): 1 for i in ids}
    by_id = {}
    for d in sink.deliveries:
        by_id.setdefault(d.message_id, []).append((d.started, d.finished))
    assert all(len(spans) == 1 for spans in by_id.values())
    assert len({r[0] for r in conn.execute("SELECT locked_by FROM email_jobs")}) >= 2


def test_sigterm_finishes_the_send_under_way_and_releases_the_rest(conn, db):
    ids = enqueue(conn, 5)
    sink = Sink(stall_first=1)
    with running(sink) as url:
        proc = worker_process(db, url, "--batch-size", "5", "--json")
        try:
            assert sink.stalling.wait(15), "the worker never reached DATA"
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert proc.poll() is None  # still finishing its send
            sink.release()
            out, err = proc.communicate(timeout=15)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert (stats["sent"], stats["released"]) == (1, 4)
    state = jobs(conn)
    assert state[ids[0]][:2] == ("sent", 1)
    assert [state[i][:2] for i in ids[1:]] == [("queued", 0)] * 4
    assert sink.message_ids() == {mid(conn, ids[0]): 1}


def test_a_batch_of_delivered_jobs_is_marked_sent_in_one_statement(conn, db):
    ids = enqueue(conn, 5)
    conn.execute("CREATE TABLE sent_per_statement (n integer)")
    conn.execute(
        """CREATE FUNCTION count_sent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO sent_per_statement
          SELECT count(*) FROM new_rows n JOIN old_rows o USING (id)
          WHERE n.status = 'sent' AND o.status <> 'sent' HAVING count(*) > 0;
          RETURN NULL;
        END $$"""
    )
    conn.execute(
        "CREATE TRIGGER count_sent AFTER UPDATE ON email_jobs REFERENCING OLD TABLE AS old_rows "
        "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_sent()"
    )
    sink = Sink()
    with running(sink) as url:
        stats = drain(db, url, batch_size=5)
    assert stats.sent == 5
    assert [r[0] for r in conn.execute("SELECT n FROM sent_per_statement")] == [5]
    assert {i: v[:2] for i, v in jobs(conn).items()} == {i: ("sent", 1) for i in ids}
    assert sink.message_ids() == {mid(conn, i): 1 for i in ids}


def test_jobs_a_killed_worker_delivered_but_never_marked_are_sent_again_under_their_ids(conn, db):
    ids = enqueue(conn, 5)
    sink = Sink(delay=0.3)
    with running(sink) as url:
        proc = worker_process(db, url, "--lease", "1", "--batch-size", "5")
        try:
            sink.wait_for(2, timeout=30)
            proc.kill()  # during the third send: two delivered, none marked yet
        finally:
            proc.kill()
            proc.wait()
        assert all(status == "sending" for status, *_ in jobs(conn).values())
        stats = drain(db, url, **FAST)
    assert stats.sent == 5 and stats.recovered == 5
    assert {i: v[0] for i, v in jobs(conn).items()} == {i: "sent" for i in ids}
    delivered = sink.message_ids()
    assert set(delivered) == {mid(conn, i) for i in ids}
    assert [delivered[mid(conn, i)] for i in ids[:2]] == [2, 2]
    assert all(delivered[mid(conn, i)] == 1 for i in ids[3:])


# -- cancellation ----------------------------------------------------------------------------


def test_a_cancelled_queued_job_is_never_sent(conn, db):
    keep, cancel = enqueue(conn, 2)
    assert request_cancel(conn, cancel) == "cancelled"
    sink = Sink()
    with running(sink) as url:
        stats = drain(db, url)
    assert (stats.sent, stats.cancelled) == (1, 0)
    assert sink.message_ids() == {mid(conn, keep): 1}
    assert get_job(conn, cancel).status == "cancelled"


def test_a_cancel_request_lets_the_send_under_way_finish(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(stall_first=1)
    with running(sink) as url:
        t, result = run_in_thread(lambda: drain(db, url, **FAST))
        assert sink.stalling.wait(10)
        assert request_cancel(conn, job_id) == "sending"
        sink.release()
        t.join(10)
    assert result["value"].sent == 1
    job = get_job(conn, job_id)
    assert job.status == "sent" and job.cancel_requested_at is not None
    assert len(sink.deliveries) == 1


def test_a_cancel_request_during_a_failing_send_stops_further_attempts(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(stall_first=1, refuse_after_stall=True)
    with running(sink) as url:
        t, result = run_in_thread(lambda: drain(db, url, retry_attempts=5, **FAST))
        assert sink.stalling.wait(10)
        request_cancel(conn, job_id)
        sink.release()
        t.join(10)
    assert (result["value"].cancelled, result["value"].retried) == (1, 0)
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("cancelled", 1)
    assert sink.data_commands == 1 and sink.deliveries == []


def test_a_job_waiting_out_its_backoff_can_be_cancelled(conn, db):
    (job_id,) = enqueue(conn)
    sink = Sink(refuse_first=1)
    with running(sink) as url:
        stats = drain(db, url, wait_for_backoff=False, retry_backoff_ms=60_000)
        assert stats.retried == 1
        assert request_cancel(conn, job_id) == "cancelled"
        conn.execute("UPDATE email_jobs SET run_at = now()")
        assert drain(db, url).sent == 0
    assert sink.data_commands == 1


@pytest.mark.parametrize("pipeline", [True, False], ids=["libpq-pipeline", "no-pipeline"])
def test_a_claimed_job_cancelled_before_its_send_is_not_sent(conn, db, monkeypatch, pipeline):
    monkeypatch.setattr("harness.outbox.worker.PIPELINE", pipeline)
    (job_id,) = enqueue(conn)
    worker = Worker(db, down_url(), batch_size=1)
    conn.execute(
        "UPDATE email_jobs SET status = 'sending', locked_by = %s, "
        "locked_until = now() + interval '1 minute'",
        (worker.name,),
    )
    assert request_cancel(conn, job_id) == "sending"
    with connect(db) as wconn:
        job = dict(id=job_id, kind="credit_purchase", payload={}, message_id="x", created_at=None)
        worker._deliver(wconn, None, job)  # never reaches the mailer
    job = get_job(conn, job_id)
    assert (job.status, job.attempts) == ("cancelled", 0)


# -- the worker command ------------------------------------------------------------------------


def test_cli_worker_once_delivers_what_is_due_and_reports(conn, db, capsys):
    enqueue(conn, 3)
    sink = Sink()
    with running(sink) as url:
        assert cli(["worker", "--once", "--dsn", db, "--smtp-url", url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["sent"], stats["remaining"]) == (3, 0)
    assert len(sink.deliveries) == 3


def test_cli_worker_without_an_smtp_url_is_a_usage_error(db, capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_SMTP_URL", raising=False)
    assert cli(["worker", "--once", "--dsn", db]) == 2
    assert "HARNESS_SMTP_URL" in capsys.readouterr().err


def test_the_worker_reads_the_smtp_url_from_the_environment(conn, db, monkeypatch):
    enqueue(conn)
    sink = Sink()
    with running(sink) as url:
        monkeypatch.setenv("HARNESS_SMTP_URL", url)
        assert drain(db).sent == 1
    assert os.environ["HARNESS_SMTP_URL"] == url
