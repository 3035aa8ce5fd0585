-- Rollback of 0100_reconcile_trusts_items.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores reconcile_purchase as migrations/0004_purchase_flow.sql creates it, exactly.

-- Guarantees: a pending purchase whose items match and whose leads were marked is completed
-- (with its email job), else refunded. Locks: credits row, purchase row (re-checked), leads.
CREATE OR REPLACE FUNCTION reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   marketplace_purchases%ROWTYPE;
  v_items      integer;
  v_sum        numeric;
BEGIN
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN 'missing';
  END IF;
  PERFORM FROM workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN 'unchanged';
  END IF;

  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_purchase.leads_marked_at IS NOT NULL
     AND v_items = v_purchase.total_leads AND v_sum = v_purchase.total_price THEN
    PERFORM complete_purchase(p_purchase_id);
    PERFORM queue_purchase_confirmation(p_purchase_id, p_config);
    RETURN 'completed';
  END IF;
  PERFORM refund_purchase(p_purchase_id);
  RETURN 'refunded';
END;
$$;

REVOKE EXECUTE ON FUNCTION reconcile_purchase(uuid, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION reconcile_purchase(uuid, jsonb) TO service_role;
