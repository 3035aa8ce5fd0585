-- Queries of `harness load` and loadtests/locustfile.py.

-- name: has_workspaces
SELECT EXISTS (SELECT FROM workspaces);

-- name: buyers
-- Every (workspace, member) pair: each is one buyer identity the load users pick from.
SELECT m.workspace_id, m.user_id
FROM workspace_members m
JOIN users u ON u.id = m.user_id
ORDER BY m.workspace_id, u.full_name;

-- name: leads_for_sale
SELECT id, marketplace_price FROM leads WHERE for_sale ORDER BY id;

-- name: purchase_with_credits
SELECT success, error_message, new_balance, purchase_id
FROM purchase_with_credits(%(workspace_id)s, %(user_id)s, %(lead_ids)s::uuid[], %(total)s, %(total)s);

-- name: in_flight
-- Sessions of the load users (application_name harness-load-user) inside a transaction
-- at this instant: running a statement, waiting on a lock, or idle in transaction.
SELECT count(*) FILTER (WHERE xact_start IS NOT NULL) AS in_flight,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_lock,
       count(*) AS connected
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND application_name = 'harness-load-user';

-- name: load_sessions
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND application_name = 'harness-load-user';

-- name: purchase_totals
SELECT count(*) AS purchases,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       coalesce(sum(total_leads), 0) AS leads_bought,
       coalesce(sum(credits_used), 0) AS credits_used
FROM marketplace_purchases;

-- name: in_flight_app
-- Sessions of the application under an HTTP load inside a transaction: those named
-- %(app)s, or (NULL) every client session of the database but the harness's own
-- observers (this sampler, the progress line, the invariant check).
SELECT count(*) FILTER (WHERE xact_start IS NOT NULL) AS in_flight,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_lock,
       count(*) AS connected
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND (application_name = %(app)s
       OR (%(app)s::text IS NULL
           AND application_name NOT IN ('harness-sampler', 'harness-progress',
                                        'harness-check')));

-- name: http_buyers
-- The (workspace, member) pairs of one HTTP load run: workspaces named with its prefix.
SELECT m.workspace_id, m.user_id
FROM workspace_members m
JOIN workspaces w ON w.id = m.workspace_id
WHERE starts_with(w.name, %(prefix)s)
ORDER BY m.workspace_id, m.user_id;

-- name: http_leads
-- The leads of one HTTP load run (their company carries the run's prefix).
SELECT id FROM leads WHERE for_sale AND starts_with(company, %(prefix)s) ORDER BY id;
