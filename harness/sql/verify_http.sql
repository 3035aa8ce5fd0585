-- Queries of the http checks (harness/proofs/verify/checks/http.py), on the application's
-- database.

-- name: workspace-purchases
-- (completed purchases, all purchases) of one workspace.
SELECT count(*) FILTER (WHERE status = 'completed'), count(*)
FROM marketplace_purchases
WHERE buyer_workspace_id = %s

-- name: totals
SELECT (SELECT count(*) FROM marketplace_purchases), (SELECT count(*) FROM workspaces)
