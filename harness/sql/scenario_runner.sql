-- Scenario runner: observing concurrency, reading outcomes (worlds: testing.sql).

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
