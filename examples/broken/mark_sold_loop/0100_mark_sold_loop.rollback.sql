-- Rollback of 0100_mark_sold_loop.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores mark_leads_sold_batch as migrations/0005_harden_money_functions.sql creates
-- it, exactly.

-- Guarantees: each distinct lead is counted once and never beyond max_sales;
-- first_sold_at is set on the first sale only. One statement; locks leads in id order.
CREATE OR REPLACE FUNCTION public.mark_leads_sold_batch(p_lead_ids uuid[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count integer;
BEGIN
  WITH locked AS (
    SELECT ld.id FROM public.leads ld
    WHERE ld.id = ANY (p_lead_ids)
    ORDER BY ld.id
    FOR UPDATE
  )
  UPDATE public.leads l
  SET sold_count = l.sold_count + 1,
      first_sold_at = coalesce(l.first_sold_at, now()),
      updated_at = now()
  FROM locked
  WHERE l.id = locked.id
    AND (l.max_sales IS NULL OR l.sold_count < l.max_sales);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;
