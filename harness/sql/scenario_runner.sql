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

-- name: connection_capacity
-- What a run may open: max_connections less the slots reserved for superusers (and, from
-- PostgreSQL 16, for roles with pg_use_reserved_connections), less the sessions open now.
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
         + coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int
         AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
         AS in_use

-- name: statuses
SELECT id, status::text AS status FROM marketplace_purchases

-- name: reconcile_purchase
SELECT reconcile_purchase(%(purchase_id)s, %(config)s)

-- name: purchase_response
-- The buyer, and the leads a purchase response would carry (purchase_response_leads, 0004).
SELECT p.buyer_workspace_id, purchase_response_leads(p.id)
FROM marketplace_purchases p WHERE p.id = %(purchase_id)s

-- The state the model is compared with (harness.money.model.Observation) -----------------

-- name: observe_accounts
SELECT w.name, c.balance, c.total_used
FROM workspaces w
LEFT JOIN workspace_credits c ON c.workspace_id = w.id
ORDER BY w.name

-- name: observe_ledger
SELECT workspace_id, entry_type::text AS entry_type, sum(amount) AS amount
FROM credit_ledger
GROUP BY workspace_id, entry_type

-- name: observe_reservations
SELECT lead_id, workspace_id, purchase_id FROM lead_reservations

-- name: observe_purchases
SELECT id, buyer_workspace_id, status::text AS status, total_price,
       purchase_response_leads(id) AS leads
FROM marketplace_purchases

-- name: observe_emails
SELECT kind, payload ->> 'email' AS email, workspace_id, purchase_id, status::text AS status
FROM email_jobs

-- name: observe_keys
SELECT workspace_id, idempotency_key, status, purchase_id FROM api_idempotency_keys
