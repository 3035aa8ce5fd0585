-- Rollback of 0100_complete_without_lock.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores complete_purchase as migrations/0005_harden_money_functions.sql creates it,
-- exactly.

-- Guarantees: a pending purchase becomes completed only when its items match total_leads and
-- total_price and its leads were counted as sold (leads_marked_at); otherwise it stays
-- pending (and the caller learns so). Any other status is left as it is (idempotent).
-- Returns the status after the call, NULL when unknown. Locks the purchase row.
CREATE OR REPLACE FUNCTION public.complete_purchase(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_purchase  public.marketplace_purchases%ROWTYPE;
  v_items     integer;
  v_sum       numeric;
BEGIN
  SELECT * INTO v_purchase
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;
  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM public.marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_items <> v_purchase.total_leads OR v_sum <> v_purchase.total_price
     OR v_purchase.leads_marked_at IS NULL THEN
    RETURN v_purchase.status;  -- not complete until its items and its sales are recorded
  END IF;
  UPDATE public.marketplace_purchases p
  SET status = 'completed', completed_at = now()
  WHERE p.id = p_purchase_id;
  RETURN 'completed';
END;
$$;
