-- The checks' reads and calls (worlds are built by harness/testing.py, testing.sql).

-- name: balances
SELECT workspace_id, balance, total_used FROM workspace_credits

-- name: purchase
SELECT success, error_message, new_balance, purchase_id
FROM purchase_with_credits(%s, %s, %s::uuid[], %s, %s)

-- name: refund
SELECT refund_purchase(%s)::text

-- name: mark-sold
SELECT mark_leads_sold_batch(%s::uuid[])

-- name: purchases
SELECT id, buyer_workspace_id, buyer_user_id, total_leads, total_price, payment_method,
       credits_used, status::text AS status
FROM marketplace_purchases

-- name: leads
SELECT id, sold_count, first_sold_at, max_sales FROM leads WHERE id = ANY (%s::uuid[])

-- name: reservations-per-purchase
SELECT p.id, p.total_leads, count(r.lead_id) AS reserved
FROM marketplace_purchases p
LEFT JOIN lead_reservations r ON r.purchase_id = p.id
GROUP BY p.id, p.total_leads

-- name: reservations-of-lead
SELECT count(*) FROM lead_reservations WHERE lead_id = %s

-- name: reservations-per-lead
SELECT lead_id, count(*) AS n FROM lead_reservations GROUP BY lead_id

-- name: ledger-per-workspace
-- Each balance beside what the ledger and the purchases say it should be.
SELECT c.workspace_id, c.balance,
       coalesce((SELECT sum(l.amount) FROM credit_ledger l
                 WHERE l.workspace_id = c.workspace_id), 0) AS ledger,
       coalesce((SELECT sum(p.credits_used) FROM marketplace_purchases p
                 WHERE p.buyer_workspace_id = c.workspace_id
                   AND p.payment_method = 'credits' AND p.status <> 'refunded'), 0) AS spent
FROM workspace_credits c

-- name: terminate-sleepers
-- Backends of this database sleeping inside a purchase transaction, terminated.
SELECT pid, pg_terminate_backend(pid)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state = 'active' AND query LIKE 'SELECT pg_sleep(%%'
  AND pid = ANY (%s::int[])

-- name: backend-pid
SELECT pg_backend_pid()

-- name: sleep
SELECT pg_sleep(%s)

-- name: has-atomic
-- purchase_leads_atomic (0004 on): the second entry point, which repeats the checks and
-- the debit of purchase_with_credits in its own body and which the purchase route runs.
SELECT to_regprocedure('public.purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, '
                       'text, jsonb)') IS NOT NULL;

-- name: buy-atomic
SELECT public.purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s);

-- name: complete
SELECT complete_purchase(%s)::text

-- name: hold-purchase
-- Holds one purchase row as complete_purchase and refund_purchase lock it.
SELECT 1 FROM marketplace_purchases WHERE id = %s FOR UPDATE

-- name: purchase-status
SELECT status::text FROM marketplace_purchases WHERE id = %s

-- name: waiting-on-lock
SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s

-- name: queue-confirmation
SELECT queue_purchase_confirmation(%s, %s)
