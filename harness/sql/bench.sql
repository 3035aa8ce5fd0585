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
FROM generate_series(%(first)s, %(last)s) g;

-- name: next_lead
SELECT nextval('bench_lead_seq');

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
