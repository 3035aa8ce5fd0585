-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- queue_purchase_confirmation subtracts the download's lifetime instead of adding it: every
-- confirmation that reconcile or the stepwise flow queues tells the buyer the download
-- expired months ago. Nothing about money changes and every invariant holds; only the
-- email's own content shows it.
--
-- queue_purchase_confirmation: copied whole from
-- migrations/0005_harden_money_functions.sql with the manifest's 1 replacement;
-- everything else is 0010_refusal_at_one_moment's.

-- Guarantees: exactly one purchase_confirmation job per purchase (a repeat returns the
-- first job's id), payload as in docs/CONTRACTS.md, through enqueue_email. No extra locks.
CREATE OR REPLACE FUNCTION public.queue_purchase_confirmation(p_purchase_id uuid, p_config jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_payload    jsonb;
  v_workspace  uuid;
BEGIN
  PERFORM public.checked_config(p_config);
  SELECT jsonb_build_object(
           'email', u.email,
           'name', coalesce(nullif(btrim(u.full_name), ''),
                            p_config ->> 'default_customer_name'),
           'total_leads', p.total_leads,
           'total_price', p.total_price::text,
           'purchase_id', p.id::text,
           'download_url', (p_config ->> 'download_url_prefix') || p.id::text,
           'download_expires_at', to_char(
             (now() - make_interval(days => (p_config ->> 'download_expiry_days')::integer))
               AT TIME ZONE 'UTC',
             'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
         p.buyer_workspace_id
  INTO v_payload, v_workspace
  FROM public.marketplace_purchases p
  JOIN public.users u ON u.id = p.buyer_user_id
  WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN public.enqueue_email('purchase_confirmation', v_payload, p_purchase_id, v_workspace);
END;
$$;
