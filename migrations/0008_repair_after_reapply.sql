-- depends: 0005_harden_money_functions
-- Repairs what rolling 0004_purchase_flow back and applying it again leaves behind.
-- 0004's rollback drops marketplace_purchases.leads_marked_at; re-applied, the column
-- comes back NULL for every purchase. A pending purchase whose leads were already
-- counted as sold (the stepwise flow crashed after "mark sold") then looks unmarked, and
-- reconcile refunds it without giving the sales back: its exclusive leads stay sold out
-- for ever (invariant sold_count_mismatch). Applying this migration re-derives the mark
-- from the leads' own counts, so a rollback and re-apply of any migration followed by
-- `harness reconcile` leaves every invariant holding. On a database that never lost the
-- column it finds nothing to repair.
--
-- A pending, unmarked purchase with items is marked when every one of its leads has
-- more sales than the completed purchases and the marked pending purchases holding it
-- account for. Purchases are taken oldest first and each one marked counts at once, so
-- two pending purchases of one lead share that lead's surplus and never claim it twice.
-- The stepwise flow counts a purchase's leads and sets its mark in one transaction, so
-- no purchase under way is ever seen half marked.

DO $$
DECLARE
  v_purchase uuid;
BEGIN
  FOR v_purchase IN
    SELECT p.id
    FROM public.marketplace_purchases p
    WHERE p.status = 'pending' AND p.leads_marked_at IS NULL
      AND EXISTS (SELECT FROM public.marketplace_purchase_items i WHERE i.purchase_id = p.id)
    ORDER BY p.created_at, p.id
  LOOP
    IF NOT EXISTS (
      SELECT
      FROM public.marketplace_purchase_items i
      JOIN public.leads l ON l.id = i.lead_id
      WHERE i.purchase_id = v_purchase
        AND l.sold_count <= (
          SELECT count(*)
          FROM public.marketplace_purchase_items i2
          JOIN public.marketplace_purchases p2 ON p2.id = i2.purchase_id
          WHERE i2.lead_id = l.id
            AND (p2.status = 'completed'
                 OR (p2.status = 'pending' AND p2.leads_marked_at IS NOT NULL)))
    ) THEN
      UPDATE public.marketplace_purchases SET leads_marked_at = now() WHERE id = v_purchase;
    END IF;
  END LOOP;
END
$$;
