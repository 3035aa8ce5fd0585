-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- reconcile_purchase without its call of checked_config: a configuration that is not what it
-- should be (here a pass rate of 2) is refused only on the path that queues the confirmation,
-- after the purchase was completed in the same statement; on the path that refunds, it is
-- never looked at, and the refund is made with a configuration the caller got wrong.
--
-- reconcile_purchase: copied whole from migrations/0006_faster_money_functions.sql with
-- the manifest's 1 replacement; everything else is 0010_refusal_at_one_moment's.

-- Guarantees: a pending purchase whose items match and whose leads were marked is completed
-- (with its email job), else refunded. Locks: the purchase row (re-checked), then as
-- complete_purchase or refund_purchase (leads by id, credits row).
CREATE OR REPLACE FUNCTION public.reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_purchase   public.marketplace_purchases%ROWTYPE;
  v_items      integer;
  v_sum        numeric;
BEGIN
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'missing';
  END IF;
  IF v_purchase.status <> 'pending' THEN
    RETURN 'unchanged';
  END IF;

  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM public.marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_purchase.leads_marked_at IS NOT NULL
     AND v_items = v_purchase.total_leads AND v_sum = v_purchase.total_price THEN
    PERFORM public.complete_purchase(p_purchase_id);
    PERFORM public.queue_purchase_confirmation(p_purchase_id, p_config);
    RETURN 'completed';
  END IF;
  PERFORM public.refund_purchase(p_purchase_id);
  RETURN 'refunded';
END;
$$;
