-- Scenario runner: observing concurrency, reading outcomes (worlds: testing.sql).

-- name: in_flight
-- Sessions of this database running a statement or holding a transaction open,
-- the sampler itself excluded.
SELECT count(*) AS n
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND (state = 'active' OR state LIKE 'idle in transaction%')

-- name: balances
SELECT w.name, c.balance
FROM workspaces w
LEFT JOIN workspace_credits c ON c.workspace_id = w.id
ORDER BY w.name

-- name: sold_counts
SELECT id, sold_count FROM leads

-- name: email_counts
SELECT count(*) AS queued,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'dead') AS dead
FROM email_jobs
