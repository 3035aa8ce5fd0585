-- Email outbox (table email_jobs, migration 0003): enqueue, inspect, and the worker's
-- claim / lease / settle statements. Every statement that settles a claimed job is
-- fenced on (status = 'sending', locked_by = the worker), so a worker that lost its
-- lease can never overwrite what the worker that took the job over recorded.

-- name: outbox_exists
SELECT to_regclass('email_jobs') IS NOT NULL;

-- name: enqueue
SELECT enqueue_email(%(kind)s, %(payload)s, %(purchase_id)s, %(workspace_id)s);

-- name: get_job
SELECT id, kind, status::text AS status, payload, purchase_id, workspace_id, message_id,
       attempts, run_at, locked_by, locked_until, last_attempt_at, last_error,
       cancel_requested_at, created_at, sent_at, dead_at, cancelled_at
FROM email_jobs
WHERE id = %(id)s;

-- name: status_counts
SELECT status::text AS status, count(*) AS n
FROM email_jobs
GROUP BY status;

-- name: pending_summary
SELECT extract(epoch FROM now() - min(created_at))::float8 AS oldest_pending_age,
       count(*) FILTER (WHERE status = 'sending' AND locked_until < now()) AS expired_leases
FROM email_jobs
WHERE status IN ('queued', 'sending');

-- name: dead_letters
SELECT id, kind, attempts, last_error, dead_at, message_id, purchase_id
FROM email_jobs
WHERE status = 'dead'
ORDER BY dead_at, id
LIMIT %(limit)s;

-- name: retry_dead
UPDATE email_jobs
SET status = 'queued', attempts = 0, run_at = now(), dead_at = NULL
WHERE status = 'dead'
  AND (%(ids)s::bigint[] IS NULL OR id = ANY (%(ids)s::bigint[]))
RETURNING id;

-- name: request_cancel
-- A queued or dead job is cancelled at once; a job being sent keeps its send and is
-- settled by the worker; a sent or cancelled job is left as it is.
WITH requested AS (
  UPDATE email_jobs j
  SET cancel_requested_at = coalesce(j.cancel_requested_at, now()),
      status = CASE WHEN j.status = 'sending' THEN j.status
                    ELSE 'cancelled'::email_job_status END,
      cancelled_at = CASE WHEN j.status = 'sending' THEN NULL ELSE now() END,
      dead_at = NULL
  WHERE j.id = %(id)s AND j.status IN ('queued', 'sending', 'dead')
  RETURNING j.status
)
SELECT status::text FROM requested
UNION ALL
SELECT status::text FROM email_jobs
WHERE id = %(id)s AND NOT EXISTS (SELECT FROM requested);

-- name: recover_expired
-- Jobs whose worker stopped renewing its lease: back to the queue, or dead when the
-- lost attempt was the last one, or cancelled when a cancel was requested meanwhile.
WITH expired AS (
  SELECT id FROM email_jobs
  WHERE status = 'sending' AND locked_until < now()
  ORDER BY locked_until
  FOR UPDATE SKIP LOCKED
), decided AS (
  SELECT j.id,
         CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
              WHEN j.attempts >= %(max_attempts)s THEN 'dead'
              ELSE 'queued' END::email_job_status AS next
  FROM email_jobs j JOIN expired USING (id)
)
UPDATE email_jobs j
SET status = d.next,
    locked_until = NULL,
    last_error = 'lease expired: worker ' || j.locked_by
                 || ' stopped before settling attempt ' || j.attempts,
    dead_at = CASE WHEN d.next = 'dead' THEN now() END,
    cancelled_at = CASE WHEN d.next = 'cancelled' THEN now() END
FROM decided d
WHERE j.id = d.id
RETURNING j.id, d.next::text AS status;

-- name: claim
WITH next AS (
  SELECT id FROM email_jobs
  WHERE status = 'queued' AND run_at <= now()
  ORDER BY run_at, id
  LIMIT %(limit)s
  FOR UPDATE SKIP LOCKED
)
UPDATE email_jobs j
SET status = 'sending',
    locked_by = %(worker)s,
    locked_until = now() + make_interval(secs => %(lease)s)
FROM next
WHERE j.id = next.id
-- message_uuid (0005) read through the row's JSON, so the worker still runs on a database
-- rolled back below 0005 (its jobs keep their old Message-ID).
RETURNING j.id, j.kind, j.payload, j.message_id,
          (to_jsonb(j) ->> 'message_uuid')::uuid AS message_uuid, j.created_at;

-- name: begin_attempt
-- Counts the attempt just before the send; no row when the lease was lost or a cancel
-- was requested since the claim.
UPDATE email_jobs
SET attempts = attempts + 1, last_attempt_at = now()
WHERE id = %(id)s AND status = 'sending' AND locked_by = %(worker)s
  AND cancel_requested_at IS NULL
RETURNING attempts;

-- name: cancel_claimed
UPDATE email_jobs
SET status = 'cancelled', cancelled_at = now(), locked_until = NULL
WHERE id = %(id)s AND status = 'sending' AND locked_by = %(worker)s
  AND cancel_requested_at IS NOT NULL
RETURNING id;

-- name: mark_sent
UPDATE email_jobs
SET status = 'sent', sent_at = now(), locked_until = NULL
WHERE id = %(id)s AND status = 'sending' AND locked_by = %(worker)s
  AND attempts = %(attempt)s
RETURNING id;

-- name: mark_failed
-- After a failed attempt: retry after the backoff, or dead letter after the last
-- attempt (or at once for a permanent refusal), or cancelled when one was requested.
WITH decided AS (
  SELECT id,
         CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
              WHEN %(permanent)s OR attempts >= %(max_attempts)s THEN 'dead'
              ELSE 'queued' END::email_job_status AS next
  FROM email_jobs
  WHERE id = %(id)s AND status = 'sending' AND locked_by = %(worker)s
    AND attempts = %(attempt)s
  FOR UPDATE
)
UPDATE email_jobs j
SET status = d.next,
    last_error = %(error)s,
    locked_until = NULL,
    run_at = CASE WHEN d.next = 'queued' THEN now() + make_interval(secs => %(delay)s)
                  ELSE j.run_at END,
    dead_at = CASE WHEN d.next = 'dead' THEN now() END,
    cancelled_at = CASE WHEN d.next = 'cancelled' THEN now() END
FROM decided d
WHERE j.id = d.id
RETURNING d.next::text AS status;

-- name: release
-- Claimed jobs a stopping worker never began: back to the queue as they were. Rows are
-- locked in id order, as the heartbeat locks them, so the two cannot deadlock.
WITH mine AS (
  SELECT id FROM email_jobs
  WHERE id = ANY (%(ids)s::bigint[]) AND status = 'sending' AND locked_by = %(worker)s
  ORDER BY id
  FOR UPDATE
)
UPDATE email_jobs j
SET status = CASE WHEN j.cancel_requested_at IS NULL THEN 'queued'
                  ELSE 'cancelled' END::email_job_status,
    cancelled_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE now() END,
    locked_until = NULL
FROM mine
WHERE j.id = mine.id
RETURNING j.id;

-- name: heartbeat
WITH mine AS (
  SELECT id FROM email_jobs
  WHERE status = 'sending' AND locked_by = %(worker)s
  ORDER BY id
  FOR UPDATE
)
UPDATE email_jobs j
SET locked_until = now() + make_interval(secs => %(lease)s)
FROM mine
WHERE j.id = mine.id;

-- name: next_due
-- Seconds until something may become claimable (a backoff ends or a lease expires),
-- and how many jobs are not yet settled.
SELECT extract(epoch FROM least(
         (SELECT min(run_at) FROM email_jobs WHERE status = 'queued'),
         (SELECT min(locked_until) FROM email_jobs WHERE status = 'sending')) - now()
       )::float8 AS wait,
       (SELECT count(*) FROM email_jobs WHERE status IN ('queued', 'sending')) AS unsettled;
