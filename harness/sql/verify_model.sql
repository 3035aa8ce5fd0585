-- The model checks (model.lifecycle, model.linearizable): resetting a world between
-- examples, and setting up a concurrent history.

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
