-- Puts back purchase_response_leads exactly as 0005_harden_money_functions defines it
-- (its privileges are unchanged by 0007).

-- Guarantees: the buyer-facing details of a purchase's leads as a jsonb array ordered by
-- lead id, the same shape as the repository's get_purchased_leads. Reads only, no locks.
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
  FROM public.marketplace_purchase_items i
  JOIN public.leads l ON l.id = i.lead_id
  WHERE i.purchase_id = p_purchase_id;
$$;
