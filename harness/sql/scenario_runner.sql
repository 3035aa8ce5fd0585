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

-- name: observe
-- The state the model is compared with (harness.money.model.Observation), in one round
-- trip: every part as a JSON array of rows (money as text, so no float on the way).
SELECT
  (SELECT coalesce(jsonb_agg(jsonb_build_array(w.name, c.balance::text, c.total_used::text)), '[]')
   FROM workspaces w LEFT JOIN workspace_credits c ON c.workspace_id = w.id) AS accounts,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(workspace_id, entry_type, amount::text)), '[]')
   FROM (SELECT workspace_id, entry_type::text AS entry_type, sum(amount) AS amount
         FROM credit_ledger GROUP BY workspace_id, entry_type) e) AS ledger,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(id, sold_count)), '[]') FROM leads) AS sold,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(lead_id, workspace_id, purchase_id)), '[]')
   FROM lead_reservations) AS reservations,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(id, buyer_workspace_id, status::text,
                                               total_price::text, purchase_response_leads(id))), '[]')
   FROM marketplace_purchases) AS purchases,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(kind, payload ->> 'email', workspace_id,
                                               purchase_id, status::text)), '[]')
   FROM email_jobs) AS emails,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(workspace_id, idempotency_key, status,
                                               purchase_id)), '[]')
   FROM api_idempotency_keys) AS keys

-- name: observe_accounts
SELECT w.name, c.balance, c.total_used
FROM workspaces w
LEFT JOIN workspace_credits c ON c.workspace_id = w.id
ORDER BY w.name
