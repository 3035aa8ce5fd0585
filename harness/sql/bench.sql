-- Setup and reading of `harness bench`; the pgbench scripts are in bench/*.sql.

-- name: setup
-- Deterministic ids, so that pgbench scripts can name rows by number: n -> md5(n) as a
-- uuid. Scattered like gen_random_uuid()'s, so that indexes see the inserts they would in
-- production rather than all of them on the rightmost leaf page.
CREATE FUNCTION bench_uuid(n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN md5(n::text)::uuid;
CREATE SEQUENCE bench_lead_seq;
CREATE TABLE bench_config (config jsonb NOT NULL);
CREATE TABLE bench_accounts (
  id          uuid PRIMARY KEY,
  balance     numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  total_used  numeric(12,2) NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- name: accounts
INSERT INTO bench_accounts (id) SELECT bench_uuid(g) FROM generate_series(1, %(spread)s) g;

-- name: config
INSERT INTO bench_config (config) VALUES (%(config)s);

-- name: workspaces
-- Workspace n, with user n its only member and the largest balance numeric(10,2) holds.
WITH w AS (
  INSERT INTO workspaces (id, name)
  SELECT bench_uuid(g), 'bench-' || g FROM generate_series(1, %(spread)s) g
  RETURNING id
), u AS (
  INSERT INTO users (id, email, full_name)
  SELECT bench_uuid(g), 'bench-' || g || '@bench.example.com', 'bench-' || g
  FROM generate_series(1, %(spread)s) g
  RETURNING id
)
INSERT INTO workspace_members (workspace_id, user_id, role)
SELECT w.id, w.id, 'owner' FROM w JOIN u ON u.id = w.id;

-- name: credits
SELECT count(add_credits(bench_uuid(g), 99999999.99, 'bench'))
FROM generate_series(1, %(spread)s) g;

-- name: partner
INSERT INTO partners (id, name, base_commission_rate, bonus_commission_rate,
                      verification_pass_rate)
VALUES (bench_uuid(1), 'bench', 0.30, 0.05, 0.97);

-- name: leads
-- Leads 1..n, unlimited sales, 1.00 each: every purchase takes the next one.
INSERT INTO leads (id, partner_id, email, marketplace_price, max_sales)
SELECT bench_uuid(g), bench_uuid(1), 'lead-' || g || '@bench.example.com', 1.00, NULL
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g;

-- name: next_lead
SELECT nextval('bench_lead_seq');

-- name: lead_position
-- The last lead number handed out (or the first to hand out, before any).
SELECT last_value FROM bench_lead_seq;

-- name: skip_leads
SELECT setval('bench_lead_seq', %(last)s);

-- name: purchases_since
SELECT count(*) FROM marketplace_purchases WHERE created_at >= %(since)s;

-- name: stat_statements_available
SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_stat_statements')
   AND current_setting('shared_preload_libraries') LIKE '%%pg_stat_statements%%' AS available;

-- name: stat_statements_reset
SELECT pg_stat_statements_reset();

-- name: stat_statements_top
-- The statements, top level and nested in the functions, that took the most time.
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 120) AS query, toplevel, calls,
       round(mean_exec_time::numeric, 4) AS mean_ms,
       round(total_exec_time::numeric, 1) AS total_ms,
       shared_blks_hit, shared_blks_read
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT %(limit)s;

-- name: seed_schema
-- The source design's functions as written go into a schema of their own, under the same
-- names: the file runs unchanged with this schema first on the search_path, and the
-- project's functions in public stay as they are. (Bench database only.)
CREATE SCHEMA seed;
SET search_path = seed, public;

-- name: seed_schema_done
RESET search_path;

-- name: stat_statements_top_call
-- The statement a pgbench script repeats (the top-level one called most often): its calls,
-- mean time, and the shared buffers it touched per call, nested statements included.
SELECT calls, round(mean_exec_time::numeric, 4) AS mean_ms,
       round((shared_blks_hit + shared_blks_read)::numeric / greatest(calls, 1), 1)
         AS buffers_per_call
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
ORDER BY calls DESC
LIMIT 1;

-- name: history_count
SELECT count(*) FROM marketplace_purchases;

-- name: history_leads
-- The leads that history rows hold, bench_uuid(-n): no run is ever offered one.
INSERT INTO leads (id, partner_id, email, marketplace_price, max_sales)
SELECT bench_uuid(-g), bench_uuid(1), 'history-' || g || '@bench.example.com', 1.00, NULL
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
ON CONFLICT (id) DO NOTHING;

-- name: history_grow
-- Completed purchases first..last as the purchase flow leaves them: purchase g bought
-- history lead g / spread for workspace g %% spread, with its item, its reservation, its
-- ledger row and its sent confirmation job. Written with triggers off (the caller sets
-- session_replication_role), so the ledger row is written here, as the trigger would.
WITH g AS (
  SELECT g, bench_uuid(-g) AS purchase_id, bench_uuid(g %% %(spread)s + 1) AS ws,
         bench_uuid(-(g / %(spread)s + 1)) AS lead_id
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
), p AS (
  INSERT INTO marketplace_purchases (id, buyer_workspace_id, buyer_user_id, total_leads,
                                     total_price, credits_used, status, completed_at,
                                     leads_marked_at)
  SELECT purchase_id, ws, ws, 1, 1.00, 1.00, 'completed', now(), now() FROM g
), i AS (
  INSERT INTO marketplace_purchase_items (purchase_id, lead_id, price_at_purchase,
                                          partner_id, commission_rate, commission_amount)
  SELECT purchase_id, lead_id, 1.00, bench_uuid(1), 0.30, 0.30 FROM g
), r AS (
  INSERT INTO lead_reservations (lead_id, workspace_id, purchase_id)
  SELECT lead_id, ws, purchase_id FROM g
), l AS (
  INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id)
  SELECT ws, 'purchase', -1.00, purchase_id FROM g
)
INSERT INTO email_jobs (kind, payload, purchase_id, workspace_id, status, attempts, sent_at)
SELECT 'purchase_confirmation',
       jsonb_build_object('email', 'bench-' || g || '@bench.example.com', 'name', 'bench',
                          'total_leads', 1, 'total_price', '1.00',
                          'purchase_id', purchase_id::text,
                          'download_url', 'https://bench.example.com/' || purchase_id,
                          'download_expires_at', '2030-01-01T00:00:00+00:00'),
       purchase_id, ws, 'sent', 1, now()
FROM g;

-- name: history_sold
-- The history leads' sales, counted from their reservations.
UPDATE leads l
SET sold_count = s.n, first_sold_at = coalesce(l.first_sold_at, now())
FROM (SELECT lead_id, count(*) AS n FROM lead_reservations
      WHERE lead_id IN (SELECT bench_uuid(-g) FROM generate_series(1, %(leads)s::bigint) g)
      GROUP BY lead_id) s
WHERE l.id = s.lead_id;

-- name: history_replica
-- Bulk history without triggers (the ledger trigger and the foreign-key checks): the
-- rows are consistent by construction, and a million of them would otherwise take minutes.
SET LOCAL session_replication_role = replica;

-- name: explain_session
-- auto_explain for this session: every statement, nested ones too, with its actual rows,
-- times and buffers, sent to the client as a notice.
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;

-- name: explain_purchase_with_credits
SELECT success FROM purchase_with_credits(
  bench_uuid(%(ws)s), bench_uuid(%(ws)s), ARRAY[bench_uuid(nextval('bench_lead_seq'))],
  1.00, 1.00);

-- name: explain_atomic
SELECT purchase_leads_atomic(
  bench_uuid(%(ws)s), bench_uuid(%(ws)s), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00,
  NULL, NULL, (SELECT config FROM bench_config));

-- name: queue_purchases
-- Purchases of leads first..last, by the workspaces in turn, through purchase_leads_atomic:
-- each queues its confirmation email as a real purchase does. Answers how many completed.
SELECT count(*) FILTER (WHERE answer ->> 'status' = 'completed')
FROM (
  SELECT purchase_leads_atomic(
           bench_uuid(g %% %(spread)s + 1), bench_uuid(g %% %(spread)s + 1), ARRAY[bench_uuid(g)], 1.00,
           NULL, NULL, (SELECT config FROM bench_config)) AS answer
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
) purchases;

-- name: queued_jobs
-- The queued jobs as the worker reads them when it claims them (queue.sql's claim).
SELECT id, kind, payload, message_id, (to_jsonb(j) ->> 'message_uuid')::uuid AS message_uuid,
       created_at
FROM email_jobs j
WHERE status = 'queued'
ORDER BY id;

-- name: unsent_jobs
SELECT count(*) FROM email_jobs WHERE status <> 'sent';
