-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- mark_leads_sold_batch as a loop of one UPDATE per array element, the shape the source
-- design's Fix #2 replaced: a lead whose id is repeated in the array is sold twice, and
-- the leads are locked in the caller's order rather than by id.
--
-- mark_leads_sold_batch: copied whole from migrations/0005_harden_money_functions.sql
-- with the manifest's 1 replacement; everything else is 0005_harden_money_functions's.

-- Guarantees: each distinct lead is counted once and never beyond max_sales;
-- first_sold_at is set on the first sale only. One statement; locks leads in id order.
CREATE OR REPLACE FUNCTION public.mark_leads_sold_batch(p_lead_ids uuid[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id     uuid;
  v_n      integer;
  v_count  integer := 0;
BEGIN
  FOREACH v_id IN ARRAY coalesce(p_lead_ids, '{}') LOOP
    UPDATE public.leads l
    SET sold_count = l.sold_count + 1,
        first_sold_at = coalesce(l.first_sold_at, now()),
        updated_at = now()
    WHERE l.id = v_id
      AND (l.max_sales IS NULL OR l.sold_count < l.max_sales);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_count := v_count + v_n;
  END LOOP;
  RETURN v_count;
END;
$$;
