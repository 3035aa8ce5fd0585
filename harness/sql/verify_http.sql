-- Queries of the http checks (harness/proofs/verify/checks/http.py), on the application's
-- database.

-- name: workspace-purchases
-- (completed purchases, all purchases) of one workspace.
SELECT count(*) FILTER (WHERE status = 'completed'), count(*)
FROM marketplace_purchases
WHERE buyer_workspace_id = %s

-- name: totals
SELECT (SELECT count(*) FROM marketplace_purchases), (SELECT count(*) FROM workspaces)

-- name: hold-credits
-- The workspace's credits row, locked as a debit locks it (FOR NO KEY UPDATE: foreign-key
-- checks, which take KEY SHARE, still pass) until this transaction ends.
SELECT balance FROM workspace_credits WHERE workspace_id = %s FOR NO KEY UPDATE

-- name: waiting-on-lock
-- Other sessions of this database waiting for a lock.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND wait_event_type = 'Lock'
