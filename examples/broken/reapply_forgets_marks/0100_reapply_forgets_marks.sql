-- depends: 0007_purchase_lifecycle
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- The rollback puts purchase_response_leads back as 0007 defines it, and also clears
-- leads_marked_at on pending purchases, on the idea that reconcile will count their leads
-- again. It will not: reconcile completes a pending purchase only when its leads were
-- counted, and refunds it otherwise, giving back only the sales leads_marked_at records.
-- After a rollback and re-apply, a stepwise purchase cut after "mark_sold" is refunded
-- with its sales left counted. The rollback rehearsals load only completed purchases, so
-- their rows all survive.
--
-- purchase_response_leads: copied whole from migrations/0007_purchase_lifecycle.sql with
-- the manifest's 0 replacements; everything else is 0007_purchase_lifecycle's.

-- Guarantees: the buyer-facing details of a completed purchase's leads as a jsonb array
-- ordered by lead id, the same shape as the repository's get_purchased_leads; an empty
-- array for a purchase pending, refunded or unknown. Reads only, no locks.
CREATE OR REPLACE FUNCTION public.purchase_response_leads(p_purchase_id uuid) RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'lead_id', l.id::text,
           'email', l.email,
           'company', l.company,
           'industry', l.industry,
           'state', l.state::text,
           'price_at_purchase', i.price_at_purchase::text,
           'intent_score_at_purchase', i.intent_score_at_purchase,
           'freshness_score_at_purchase', i.freshness_score_at_purchase
         ) ORDER BY l.id), '[]'::jsonb)
  FROM public.marketplace_purchases p
  JOIN public.marketplace_purchase_items i ON i.purchase_id = p.id
  JOIN public.leads l ON l.id = i.lead_id
  WHERE p.id = p_purchase_id AND p.status = 'completed';
$$;

REVOKE ALL ON FUNCTION public.purchase_response_leads(uuid) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.purchase_response_leads(uuid) TO service_role;
