-- depends: 0005_harden_money_functions
-- The purchase lifecycle as harness/money/model.py states it, where the functions did not:
--
-- * A purchase hands out its leads only once it is completed. A refunded purchase keeps its
--   items, as the history of what was bought and given back (commissions, audits), but they
--   are not deliverable: purchase_response_leads answers nothing for it, nor for a purchase
--   still pending (a stepwise purchase cut after its items, which reconcile may yet refund).
--   The repository's get_purchased_leads applies the same rule (harness/sql/repository.sql).
--
-- Found by model.lifecycle (harness verify): a stepwise purchase cut after "items", then
-- refunded by reconcile, still delivered its leads to the buyer who got the money back.
-- Written over 0005's definition, in its hardened style.

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
