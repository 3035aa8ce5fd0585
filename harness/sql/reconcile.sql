-- Settling what a crash of the stepwise flow left behind. Every statement only touches
-- rows older than the threshold, so purchases under way are left alone.

-- name: stuck_purchases
SELECT id FROM marketplace_purchases
WHERE status = 'pending' AND created_at < now() - %(older_than)s::interval
ORDER BY created_at, id;

-- name: reconcile_purchase
SELECT reconcile_purchase(%(purchase_id)s, %(config)s);

-- name: completed_without_email
SELECT p.id FROM marketplace_purchases p
WHERE p.status = 'completed' AND p.completed_at < now() - %(older_than)s::interval
  AND NOT EXISTS (SELECT FROM email_jobs j WHERE j.purchase_id = p.id)
ORDER BY p.completed_at, p.id;

-- name: queue_purchase_confirmation
SELECT queue_purchase_confirmation(%(purchase_id)s, %(config)s);

-- name: complete_keys
-- Keys whose purchase completed: the response the crashed request would have stored.
-- new_balance comes from what the request kept right after its debit, else from the
-- ledger up to that debit (its entries are written under the credits row lock, in order).
WITH keys AS (
  SELECT k.id FROM api_idempotency_keys k
  JOIN marketplace_purchases p ON p.id = k.purchase_id
  WHERE k.status = 'processing' AND p.status = 'completed'
    AND k.created_at < now() - %(older_than)s::interval
  FOR UPDATE OF k SKIP LOCKED
)
UPDATE api_idempotency_keys k
SET status = 'completed',
    completed_at = now(),
    response_data = jsonb_build_object(
      'purchase_id', p.id::text,
      'total_price', p.total_price::text,
      'new_balance', coalesce(
        k.response_data ->> 'new_balance',
        (SELECT sum(l.amount)::numeric(10,2)::text FROM credit_ledger l
         WHERE l.workspace_id = p.buyer_workspace_id
           AND l.id <= (SELECT max(d.id) FROM credit_ledger d
                        WHERE d.purchase_id = p.id AND d.entry_type = 'purchase'))),
      'leads', purchase_response_leads(p.id))
FROM keys, marketplace_purchases p
WHERE k.id = keys.id AND p.id = k.purchase_id
RETURNING k.id;

-- name: fail_keys
-- Keys whose purchase was refunded, or that never got one: the request failed; a retry
-- under the same key runs afresh.
WITH keys AS (
  SELECT k.id FROM api_idempotency_keys k
  LEFT JOIN marketplace_purchases p ON p.id = k.purchase_id
  WHERE k.status = 'processing'
    AND k.created_at < now() - %(older_than)s::interval
    AND (p.id IS NULL OR p.status = 'refunded')
  FOR UPDATE OF k SKIP LOCKED
)
UPDATE api_idempotency_keys k
SET status = 'failed',
    response_data = jsonb_build_object(
      'error_code', 'reconciled',
      'error_message', 'The purchase did not complete; it was refunded by reconcile.')
FROM keys
WHERE k.id = keys.id
RETURNING k.id;
