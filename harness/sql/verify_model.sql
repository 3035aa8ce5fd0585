-- The model checks (model.lifecycle, model.linearizable): resetting a world between
-- examples, and setting up a concurrent history; model.commission's calls and items.

-- name: reset
-- Back to the world as built, keeping workspaces, users and leads: every purchase, key,
-- email job, ledger entry, reservation and credits account gone, every lead unsold.
DELETE FROM email_jobs;
DELETE FROM api_idempotency_keys;
DELETE FROM credit_ledger;
DELETE FROM lead_reservations;
DELETE FROM marketplace_purchase_items;
DELETE FROM marketplace_purchases;
DELETE FROM workspace_credits;
UPDATE leads SET sold_count = 0, first_sold_at = NULL WHERE sold_count <> 0;
DO $$
BEGIN
  IF to_regclass('credit_payment_references') IS NOT NULL THEN
    DELETE FROM credit_payment_references;
  END IF;
END
$$

-- name: has-commission
SELECT to_regprocedure('public.calculate_commission(numeric, numeric, numeric, numeric, '
                       'timestamptz, timestamptz, jsonb)') IS NOT NULL;

-- name: commission
SELECT rate, amount, bonuses
FROM public.calculate_commission(%(price)s, %(base)s, %(bonus)s, %(pass_rate)s,
                                 %(created)s, %(sale)s, %(config)s);

-- name: items-with-commission
-- Each item of a purchase with its lead's age and its partner's rates at the sale.
SELECT i.lead_id, i.price_at_purchase, i.commission_rate, i.commission_amount,
       i.commission_bonuses, l.created_at, p.created_at AS sold_at,
       pt.base_commission_rate, pt.bonus_commission_rate, pt.verification_pass_rate
FROM public.marketplace_purchase_items i
JOIN public.marketplace_purchases p ON p.id = i.purchase_id
JOIN public.leads l ON l.id = i.lead_id
JOIN public.partners pt ON pt.id = i.partner_id
WHERE i.purchase_id = %s
ORDER BY i.lead_id;
