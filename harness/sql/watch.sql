-- harness watch: what a deployment can be judged by, read in one read-only transaction.
-- %(since)s is the window (an interval), %(timeout)s how long a purchase may stay pending.
-- Columns a migration may not have yet are read through to_jsonb(row), so a query keeps
-- working on an older schema.

-- name: read-only
SET TRANSACTION READ ONLY;

-- name: table-present
SELECT to_regclass(%(table)s) IS NOT NULL AS present;

-- name: stuck-pending
SELECT id::text, buyer_workspace_id::text AS workspace_id, created_at,
       date_trunc('second', now() - created_at)::text AS age
FROM marketplace_purchases
WHERE status = 'pending' AND created_at < now() - %(timeout)s::interval
ORDER BY created_at
LIMIT 20;

-- name: stuck-pending-count
SELECT count(*) AS n
FROM marketplace_purchases
WHERE status = 'pending' AND created_at < now() - %(timeout)s::interval;

-- name: purchases-in-window
SELECT count(*) FILTER (WHERE created_at >= now() - %(since)s::interval) AS created,
       count(*) FILTER (WHERE completed_at >= now() - %(since)s::interval) AS completed,
       count(*) FILTER (WHERE refunded_at >= now() - %(since)s::interval) AS refunded,
       count(*) FILTER (WHERE status = 'pending') AS pending_now
FROM marketplace_purchases;

-- name: failed-keys
-- A refused or failed purchase that carried an idempotency key leaves its key 'failed'
-- with the error in response_data; a refusal without a key leaves no row anywhere.
SELECT coalesce(response_data ->> 'error_code', response_data ->> 'code', 'unknown') AS code,
       min(coalesce(response_data ->> 'error_message', response_data ->> 'error',
                    response_data ->> 'message', '')) AS message,
       count(*) AS n
FROM api_idempotency_keys
WHERE status = 'failed'
  AND coalesce(completed_at, created_at) >= now() - %(since)s::interval
GROUP BY 1
ORDER BY 3 DESC, 1;

-- name: email-jobs
SELECT count(*) FILTER (WHERE j.status::text = 'dead'
                          AND coalesce((to_jsonb(j) ->> 'dead_at')::timestamptz, j.created_at)
                              >= now() - %(since)s::interval) AS dead_in_window,
       count(*) FILTER (WHERE j.status::text = 'dead') AS dead_total,
       count(*) FILTER (WHERE j.status::text IN ('queued', 'sending') AND j.attempts > 0)
         AS failing,
       count(*) FILTER (WHERE j.status::text IN ('queued', 'sending')) AS waiting,
       count(*) FILTER (WHERE j.status::text = 'sent'
                          AND j.sent_at >= now() - %(since)s::interval) AS sent_in_window,
       min(j.created_at) FILTER (WHERE j.status::text = 'queued') AS oldest_queued
FROM email_jobs j;

-- name: email-errors
SELECT j.status::text AS status, coalesce(to_jsonb(j) ->> 'last_error', '') AS error,
       count(*) AS n
FROM email_jobs j
WHERE (j.status::text = 'dead'
       AND coalesce((to_jsonb(j) ->> 'dead_at')::timestamptz, j.created_at)
           >= now() - %(since)s::interval)
   OR (j.status::text IN ('queued', 'sending') AND j.attempts > 0)
GROUP BY 1, 2
ORDER BY 3 DESC
LIMIT 10;

-- name: pg-stat-statements
SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements';

-- name: slowest-statements
SELECT left(regexp_replace(s.query, '\s+', ' ', 'g'), 200) AS query, s.calls,
       round(s.mean_exec_time::numeric, 2) AS mean_ms,
       round(s.total_exec_time::numeric, 1) AS total_ms
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.mean_exec_time DESC
LIMIT %(limit)s;
