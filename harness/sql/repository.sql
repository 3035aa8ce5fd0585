-- The purchase repository's statements. The legacy flow's statements touch only the
-- tables of 0001_base_schema, so it keeps working after 0002-0004 are rolled back.

-- name: purchase_with_credits
SELECT success, error_message, new_balance, purchase_id
FROM purchase_with_credits(%(workspace_id)s, %(user_id)s, %(lead_ids)s::uuid[],
                           %(total_price)s, %(credits_used)s);

-- name: mark_leads_sold_batch
SELECT mark_leads_sold_batch(%(lead_ids)s::uuid[]);

-- name: lock_purchase
SELECT status::text FROM marketplace_purchases WHERE id = %(purchase_id)s FOR UPDATE;

-- name: stamp_leads_marked
UPDATE marketplace_purchases SET leads_marked_at = now() WHERE id = %(purchase_id)s;

-- name: add_purchase_items
INSERT INTO marketplace_purchase_items (
  purchase_id, lead_id, price_at_purchase, intent_score_at_purchase,
  freshness_score_at_purchase, partner_id, commission_rate, commission_amount,
  commission_bonuses
)
SELECT %(purchase_id)s, x.lead_id, x.price_at_purchase, x.intent_score_at_purchase,
       x.freshness_score_at_purchase, x.partner_id, x.commission_rate, x.commission_amount,
       coalesce(x.commission_bonuses, '{}')
FROM jsonb_to_recordset(%(items)s) AS x (
  lead_id uuid, price_at_purchase numeric, intent_score_at_purchase integer,
  freshness_score_at_purchase integer, partner_id uuid, commission_rate numeric,
  commission_amount numeric, commission_bonuses text[]
);

-- name: complete_purchase
SELECT complete_purchase(%(purchase_id)s)::text;

-- name: refund_purchase
SELECT refund_purchase(%(purchase_id)s)::text;

-- name: get_purchase
SELECT id, buyer_workspace_id, buyer_user_id, total_leads, total_price, payment_method,
       credits_used, status::text AS status, created_at, completed_at, refunded_at
FROM marketplace_purchases
WHERE id = %(purchase_id)s;

-- name: get_purchased_leads
-- The buyer's own purchase only: another workspace asking gets no rows. The shape is
-- the one purchase_response_leads (0004) builds; tests hold the two together. Not a call
-- of that function because the legacy flow uses this and must need nothing beyond 0001.
SELECT jsonb_build_object(
         'lead_id', l.id::text,
         'email', l.email,
         'company', l.company,
         'industry', l.industry,
         'state', l.state::text,
         'price_at_purchase', i.price_at_purchase::text,
         'intent_score_at_purchase', i.intent_score_at_purchase,
         'freshness_score_at_purchase', i.freshness_score_at_purchase
       ) AS lead
FROM marketplace_purchases p
JOIN marketplace_purchase_items i ON i.purchase_id = p.id
JOIN leads l ON l.id = i.lead_id
WHERE p.id = %(purchase_id)s AND p.buyer_workspace_id = %(workspace_id)s
ORDER BY l.id;

-- name: add_credits
SELECT add_credits(%(workspace_id)s, %(amount)s, %(package)s);

-- name: add_credits_reference
-- The payment provider's reference makes a retried top-up credit once (migration 0005).
SELECT add_credits(%(workspace_id)s, %(amount)s, %(package)s, %(reference)s::text);

-- name: workspace_exists
SELECT EXISTS (SELECT FROM workspaces WHERE id = %(workspace_id)s);

-- name: lock_payment_reference
-- Held until the top-up's transaction ends: a retried webhook waits for the first and
-- then sees its ledger entry, so it neither credits nor emails a second time.
SELECT pg_catalog.pg_advisory_xact_lock(
  pg_catalog.hashtextextended('topup/' || %(workspace_id)s::text || '/' || %(reference)s::text, 0::bigint));

-- name: payment_reference_seen
SELECT EXISTS (
  SELECT FROM credit_payment_references
  WHERE workspace_id = %(workspace_id)s AND payment_reference = %(reference)s::text
);

-- name: load_leads
SELECT l.id, l.partner_id, l.marketplace_price, l.intent_score_calculated,
       l.freshness_score, l.for_sale, l.max_sales, l.sold_count, l.created_at,
       p.name AS partner_name, p.base_commission_rate, p.bonus_commission_rate,
       p.verification_pass_rate
FROM leads l
LEFT JOIN partners p ON p.id = l.partner_id
WHERE l.id = ANY (%(lead_ids)s::uuid[])
ORDER BY l.id;

-- name: is_member
SELECT EXISTS (
  SELECT FROM workspace_members
  WHERE workspace_id = %(workspace_id)s AND user_id = %(user_id)s
);

-- name: get_user
SELECT id, email, full_name FROM users WHERE id = %(user_id)s;

-- name: workspace_contact
-- Who hears about a top-up: the given address if it is a user's, else the workspace's
-- owner (then admin, then member), earliest first.
SELECT u.id, u.email, u.full_name
FROM users u
LEFT JOIN workspace_members m ON m.user_id = u.id AND m.workspace_id = %(workspace_id)s
WHERE (%(email)s::text IS NOT NULL AND u.email = %(email)s)
   OR (%(email)s::text IS NULL AND m.workspace_id IS NOT NULL)
ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.created_at
LIMIT 1;

-- name: outbox_present
SELECT to_regprocedure('enqueue_email(text, jsonb, uuid, uuid)') IS NOT NULL;

-- name: atomic_purchase
SELECT purchase_leads_atomic(%(workspace_id)s, %(user_id)s, %(lead_ids)s::uuid[],
                             %(total_price)s, %(idempotency_key)s, %(fingerprint)s,
                             %(config)s);

-- name: calculate_commission
SELECT rate, amount, bonuses
FROM calculate_commission(%(sale_price)s, %(base_rate)s, %(bonus_rate)s, %(pass_rate)s,
                          %(lead_created_at)s, %(sale_date)s, %(config)s);

-- Idempotency keys ------------------------------------------------------------------------

-- name: claim_key
INSERT INTO api_idempotency_keys (workspace_id, idempotency_key, request_fingerprint)
VALUES (%(workspace_id)s, %(key)s, %(fingerprint)s)
ON CONFLICT ON CONSTRAINT api_idempotency_keys_scope DO NOTHING
RETURNING id;

-- name: lock_key_nowait
SELECT id, workspace_id, idempotency_key, request_fingerprint, status, response_data,
       purchase_id
FROM api_idempotency_keys
WHERE workspace_id = %(workspace_id)s AND idempotency_key = %(key)s
FOR UPDATE NOWAIT;

-- name: reclaim_key
UPDATE api_idempotency_keys
SET status = 'processing', response_data = NULL, purchase_id = NULL, completed_at = NULL,
    created_at = now()
WHERE id = %(id)s AND status = 'failed';

-- name: link_key
-- Right after the debit: ties the key to its purchase and keeps what only the debit
-- knows (the balance after it), so reconcile can finish the response after a crash.
UPDATE api_idempotency_keys
SET purchase_id = %(purchase_id)s, response_data = %(partial)s
WHERE workspace_id = %(workspace_id)s AND idempotency_key = %(key)s
  AND status = 'processing';

-- name: complete_key
UPDATE api_idempotency_keys
SET status = 'completed', response_data = %(response)s, purchase_id = %(purchase_id)s,
    completed_at = now()
WHERE workspace_id = %(workspace_id)s AND idempotency_key = %(key)s;

-- name: fail_key
UPDATE api_idempotency_keys
SET status = 'failed', response_data = %(response)s
WHERE workspace_id = %(workspace_id)s AND idempotency_key = %(key)s
  AND status = 'processing';

-- Legacy flow (tables of 0001 only) -------------------------------------------------------

-- name: legacy_read_credits
SELECT balance, total_used FROM workspace_credits WHERE workspace_id = %(workspace_id)s;

-- name: legacy_already_purchased
SELECT EXISTS (
  SELECT FROM lead_reservations
  WHERE workspace_id = %(workspace_id)s AND lead_id = ANY (%(lead_ids)s::uuid[])
);

-- name: legacy_write_balance
-- The known-bad step: a value computed in Python from an earlier, unlocked read.
UPDATE workspace_credits
SET balance = %(balance)s, total_used = %(total_used)s, updated_at = now()
WHERE workspace_id = %(workspace_id)s;

-- name: legacy_insert_purchase
INSERT INTO marketplace_purchases (
  buyer_workspace_id, buyer_user_id, total_leads, total_price, payment_method,
  credits_used, status
) VALUES (
  %(workspace_id)s, %(user_id)s, %(total_leads)s, %(total_price)s, 'credits',
  %(total_price)s, 'pending'
) RETURNING id;

-- name: legacy_reserve
INSERT INTO lead_reservations (lead_id, workspace_id, purchase_id)
SELECT l, %(workspace_id)s, %(purchase_id)s FROM unnest(%(lead_ids)s::uuid[]) AS l;

-- name: legacy_mark_sold
UPDATE leads
SET sold_count = sold_count + 1, first_sold_at = coalesce(first_sold_at, now()),
    updated_at = now()
WHERE id = ANY (%(lead_ids)s::uuid[]);

-- name: legacy_complete
UPDATE marketplace_purchases
SET status = 'completed', completed_at = now()
WHERE id = %(purchase_id)s AND status = 'pending';
