-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- refund_purchase without its early return for an id that is no purchase: every statement
-- after it finds nothing to do, and the function answers 'refunded'. Nothing changes in the
-- database, but an operator's mistyped id (or a webhook for a purchase of another system) is
-- told a refund was made, and whoever is told passes it on to the buyer.
--
-- refund_purchase: copied whole from migrations/0006_faster_money_functions.sql with the
-- manifest's 1 replacement; everything else is 0010_refusal_at_one_moment's.

-- Guarantees: pending -> refunded with credits, reservations and (if marked) sales given
-- back; other statuses untouched (idempotent). Locks: purchase row, leads by id, credits row.
CREATE OR REPLACE FUNCTION public.refund_purchase(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_purchase  public.marketplace_purchases%ROWTYPE;
BEGIN
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;

  IF v_purchase.leads_marked_at IS NOT NULL THEN
    WITH locked AS (
      SELECT ld.id FROM public.leads ld
      WHERE ld.id IN (SELECT i.lead_id FROM public.marketplace_purchase_items i
                      WHERE i.purchase_id = p_purchase_id)
      ORDER BY ld.id
      FOR UPDATE
    )
    UPDATE public.leads l
    SET sold_count = l.sold_count - 1,
        first_sold_at = CASE WHEN l.sold_count = 1 THEN NULL ELSE l.first_sold_at END,
        updated_at = now()
    FROM locked
    WHERE l.id = locked.id AND l.sold_count > 0;
  END IF;

  DELETE FROM public.lead_reservations r WHERE r.purchase_id = p_purchase_id;

  UPDATE public.marketplace_purchases p
  SET status = 'refunded', refunded_at = now()
  WHERE p.id = p_purchase_id;

  IF v_purchase.payment_method = 'credits' AND v_purchase.credits_used > 0 THEN
    UPDATE public.workspace_credits c
    SET balance = c.balance + v_purchase.credits_used,
        total_used = greatest(c.total_used - v_purchase.credits_used, 0),
        updated_at = now()
    WHERE c.workspace_id = v_purchase.buyer_workspace_id;
  END IF;
  RETURN 'refunded';
END;
$$;
