-- The invariant checker's queries. Each named block except the first returns the rows
-- that break one invariant; an empty result means it holds. All are read-only.

-- name: begin_snapshot
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: table_exists
SELECT to_regclass(%(table)s) IS NOT NULL AS present

-- name: function_exists
SELECT to_regprocedure(%(function)s) IS NOT NULL AS present

-- name: negative_balance
SELECT c.workspace_id, w.name AS workspace, c.balance
FROM workspace_credits c
LEFT JOIN workspaces w ON w.id = c.workspace_id
WHERE c.balance < 0
ORDER BY c.workspace_id

-- name: balance_ledger_mismatch
-- A workspace with ledger entries but no credits account counts as balance 0.
WITH ledger AS (
  SELECT workspace_id, sum(amount) AS ledger_sum
  FROM credit_ledger
  GROUP BY workspace_id
)
SELECT coalesce(c.workspace_id, l.workspace_id) AS workspace_id, w.name AS workspace,
       c.balance, coalesce(l.ledger_sum, 0) AS ledger_sum
FROM workspace_credits c
FULL JOIN ledger l ON l.workspace_id = c.workspace_id
LEFT JOIN workspaces w ON w.id = coalesce(c.workspace_id, l.workspace_id)
WHERE coalesce(c.balance, 0) <> coalesce(l.ledger_sum, 0)
ORDER BY 1

-- name: ledger_overdraft
-- Entries in id order (ids are drawn while the writer holds the credits row lock, so
-- under a correct flow this is the order the balance changed in). A running total
-- below zero is money spent that was never there: the lost update of a racy debit,
-- which the balance's CHECK (balance >= 0) cannot show by itself.
WITH running AS (
  SELECT workspace_id, amount,
         sum(amount) OVER (PARTITION BY workspace_id ORDER BY id) AS running_total
  FROM credit_ledger
)
SELECT r.workspace_id, w.name AS workspace,
       sum(r.amount) FILTER (WHERE r.amount > 0) AS credited,
       -sum(r.amount) FILTER (WHERE r.amount < 0) AS spent,
       sum(r.amount) AS ledger_total,
       min(r.running_total) AS lowest_running_total
FROM running r
LEFT JOIN workspaces w ON w.id = r.workspace_id
GROUP BY r.workspace_id, w.name
HAVING min(r.running_total) < 0
ORDER BY r.workspace_id

-- name: total_used_mismatch
WITH used AS (
  SELECT buyer_workspace_id AS workspace_id, sum(credits_used) AS credits_used
  FROM marketplace_purchases
  WHERE payment_method = 'credits' AND status <> 'refunded'
  GROUP BY buyer_workspace_id
)
SELECT coalesce(c.workspace_id, u.workspace_id) AS workspace_id, w.name AS workspace,
       c.total_used, coalesce(u.credits_used, 0) AS credits_of_purchases
FROM workspace_credits c
FULL JOIN used u ON u.workspace_id = c.workspace_id
LEFT JOIN workspaces w ON w.id = coalesce(c.workspace_id, u.workspace_id)
WHERE coalesce(c.total_used, 0) <> coalesce(u.credits_used, 0)
ORDER BY 1

-- name: completed_purchase_items_mismatch
SELECT p.id AS purchase_id, p.total_leads, p.total_price,
       count(i.id) AS item_count, coalesce(sum(i.price_at_purchase), 0) AS item_total
FROM marketplace_purchases p
LEFT JOIN marketplace_purchase_items i ON i.purchase_id = p.id
WHERE p.status = 'completed'
GROUP BY p.id
HAVING count(i.id) <> p.total_leads OR coalesce(sum(i.price_at_purchase), 0) <> p.total_price
ORDER BY p.id

-- name: sold_count_mismatch
-- A lead's sold_count is its live sales: one per completed purchase of it, and one per
-- pending purchase whose leads were already counted (leads_marked_at, written in the same
-- transaction as the count, so one snapshot sees both or neither). A refunded purchase's
-- sale is given back. leads_marked_at is read through to_jsonb so that the query runs on
-- a database without migration 0004 too (every pending purchase then counts as unmarked).
WITH sales AS (
  SELECT i.lead_id,
         count(*) FILTER (WHERE p.status = 'completed') AS completed_sales,
         count(*) FILTER (WHERE p.status = 'pending'
                            AND to_jsonb(p) ->> 'leads_marked_at' IS NOT NULL) AS marked_sales
  FROM marketplace_purchase_items i
  JOIN marketplace_purchases p ON p.id = i.purchase_id
  GROUP BY i.lead_id
)
SELECT l.id AS lead_id, l.sold_count,
       coalesce(s.completed_sales, 0) AS completed_sales,
       coalesce(s.marked_sales, 0) AS pending_marked_sales
FROM leads l
LEFT JOIN sales s ON s.lead_id = l.id
WHERE l.sold_count <> coalesce(s.completed_sales, 0) + coalesce(s.marked_sales, 0)
ORDER BY l.id

-- name: max_sales_exceeded
WITH sales AS (
  SELECT i.lead_id, count(*) AS sales
  FROM marketplace_purchase_items i
  JOIN marketplace_purchases p ON p.id = i.purchase_id
  WHERE p.status <> 'refunded'
  GROUP BY i.lead_id
), held AS (
  SELECT r.lead_id, count(*) AS reservations
  FROM lead_reservations r
  JOIN marketplace_purchases p ON p.id = r.purchase_id
  WHERE p.status <> 'refunded'
  GROUP BY r.lead_id
)
SELECT l.id AS lead_id, l.max_sales, l.sold_count,
       coalesce(s.sales, 0) AS sales, coalesce(h.reservations, 0) AS reservations
FROM leads l
LEFT JOIN sales s ON s.lead_id = l.id
LEFT JOIN held h ON h.lead_id = l.id
WHERE l.max_sales IS NOT NULL
  AND greatest(l.sold_count, coalesce(s.sales, 0), coalesce(h.reservations, 0)) > l.max_sales
ORDER BY l.id

-- name: lead_bought_twice
WITH held AS (
  SELECT p.buyer_workspace_id AS workspace_id, i.lead_id, p.id AS purchase_id
  FROM marketplace_purchase_items i
  JOIN marketplace_purchases p ON p.id = i.purchase_id
  WHERE p.status <> 'refunded'
  UNION
  SELECT r.workspace_id, r.lead_id, p.id
  FROM lead_reservations r
  JOIN marketplace_purchases p ON p.id = r.purchase_id
  WHERE p.status <> 'refunded'
)
SELECT h.workspace_id, w.name AS workspace, h.lead_id,
       array_agg(h.purchase_id ORDER BY h.purchase_id) AS purchase_ids
FROM held h
LEFT JOIN workspaces w ON w.id = h.workspace_id
GROUP BY h.workspace_id, w.name, h.lead_id
HAVING count(DISTINCT h.purchase_id) > 1
ORDER BY h.workspace_id, h.lead_id

-- name: stuck_pending
SELECT p.id AS purchase_id, p.buyer_workspace_id AS workspace_id, p.credits_used,
       p.created_at, now() - p.created_at AS age
FROM marketplace_purchases p
WHERE p.status = 'pending' AND p.created_at <= now() - %(timeout)s::interval
ORDER BY p.created_at, p.id

-- name: confirmation_email_missing
SELECT p.id AS purchase_id, p.buyer_workspace_id AS workspace_id,
       count(j.id) AS confirmation_jobs
FROM marketplace_purchases p
LEFT JOIN email_jobs j ON j.purchase_id = p.id AND j.kind = 'purchase_confirmation'
WHERE p.status = 'completed'
GROUP BY p.id
HAVING count(j.id) <> 1
ORDER BY p.id

-- name: debit_without_purchase
-- Both directions: a purchase entry in the ledger must belong to an existing credit
-- purchase and take exactly its credits; a credit purchase must have exactly one.
SELECT e.id AS ledger_id, e.workspace_id, e.amount, e.purchase_id,
       p.credits_used,
       CASE WHEN e.purchase_id IS NULL THEN 'debit names no purchase'
            WHEN p.id IS NULL THEN 'debit names a purchase that does not exist'
            WHEN p.payment_method <> 'credits' THEN 'debit for a purchase not paid by credits'
            ELSE 'debit differs from the purchase''s credits_used'
       END AS problem
FROM credit_ledger e
LEFT JOIN marketplace_purchases p ON p.id = e.purchase_id
WHERE e.entry_type = 'purchase'
  AND (p.id IS NULL OR p.payment_method <> 'credits' OR e.amount <> -p.credits_used)
UNION ALL
SELECT NULL, p.buyer_workspace_id, NULL, p.id, p.credits_used,
       CASE WHEN count(e.id) = 0 THEN 'credit purchase without a debit'
            ELSE 'credit purchase with ' || count(e.id) || ' debits'
       END
FROM marketplace_purchases p
LEFT JOIN credit_ledger e ON e.purchase_id = p.id AND e.entry_type = 'purchase'
WHERE p.payment_method = 'credits' AND p.credits_used > 0
GROUP BY p.id
HAVING count(e.id) <> 1
ORDER BY 4, 1


-- name: refunded_purchase_holds_leads
-- A refund releases every reservation of its purchase.
SELECT r.purchase_id, r.workspace_id, r.lead_id
FROM lead_reservations r
JOIN marketplace_purchases p ON p.id = r.purchase_id
WHERE p.status = 'refunded'
ORDER BY r.purchase_id, r.lead_id

-- name: unfinished_purchase_delivers_leads
-- Only a completed purchase hands out its leads: a pending or refunded one (whose items
-- stay as history) gets nothing from purchase_response_leads or get_purchased_leads.
SELECT p.id AS purchase_id, p.status::text AS status,
       jsonb_array_length(purchase_response_leads(p.id)) AS response_leads
FROM marketplace_purchases p
WHERE p.status <> 'completed'
  AND jsonb_array_length(purchase_response_leads(p.id)) > 0
ORDER BY p.id

-- name: completed_purchase_items_not_its_leads
-- A completed purchase's items are exactly the leads it reserved: none missing, none
-- extra.
WITH items AS (
  SELECT i.purchase_id, array_agg(i.lead_id ORDER BY i.lead_id) AS leads
  FROM marketplace_purchase_items i GROUP BY i.purchase_id
), held AS (
  SELECT r.purchase_id, array_agg(r.lead_id ORDER BY r.lead_id) AS leads
  FROM lead_reservations r GROUP BY r.purchase_id
)
SELECT p.id AS purchase_id, coalesce(i.leads, '{}') AS item_leads,
       coalesce(h.leads, '{}') AS reserved_leads
FROM marketplace_purchases p
LEFT JOIN items i ON i.purchase_id = p.id
LEFT JOIN held h ON h.purchase_id = p.id
WHERE p.status = 'completed' AND coalesce(i.leads, '{}') <> coalesce(h.leads, '{}')
ORDER BY p.id

-- name: purchase_reservations_mismatch
-- A pending or completed purchase holds one reservation per lead (total_leads of them),
-- each for its buyer's workspace.
SELECT p.id AS purchase_id, p.status::text AS status, p.total_leads,
       count(r.lead_id) AS reservations,
       count(r.lead_id) FILTER (WHERE r.workspace_id <> p.buyer_workspace_id)
         AS for_another_workspace
FROM marketplace_purchases p
LEFT JOIN lead_reservations r ON r.purchase_id = p.id
WHERE p.status <> 'refunded'
GROUP BY p.id
HAVING count(r.lead_id) <> p.total_leads
    OR count(r.lead_id) FILTER (WHERE r.workspace_id <> p.buyer_workspace_id) > 0
ORDER BY p.id

-- name: refund_ledger_mismatch
-- A refunded credit purchase has exactly one refund entry, of exactly its credits; no
-- other purchase has one.
SELECT p.id AS purchase_id, p.status::text AS status, p.credits_used,
       count(e.id) AS refund_entries, coalesce(sum(e.amount), 0) AS refunded
FROM marketplace_purchases p
LEFT JOIN credit_ledger e ON e.purchase_id = p.id AND e.entry_type = 'refund'
GROUP BY p.id
HAVING (p.status = 'refunded' AND p.payment_method = 'credits' AND p.credits_used > 0
        AND (count(e.id) <> 1 OR coalesce(sum(e.amount), 0) <> p.credits_used))
    OR ((p.status <> 'refunded' OR p.payment_method <> 'credits') AND count(e.id) > 0)
ORDER BY p.id

-- name: idempotency_key_mismatch
-- A completed key names a completed purchase (its response is replayed for ever); a
-- failed key names no purchase or a refunded one (the request may run again).
SELECT k.id AS key_id, k.workspace_id, k.idempotency_key, k.status AS key_status,
       k.purchase_id, p.status::text AS purchase_status
FROM api_idempotency_keys k
LEFT JOIN marketplace_purchases p ON p.id = k.purchase_id
WHERE (k.status = 'completed' AND (p.id IS NULL OR p.status <> 'completed'))
   OR (k.status = 'failed' AND p.id IS NOT NULL AND p.status <> 'refunded')
ORDER BY k.id
