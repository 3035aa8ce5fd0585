-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- A refund button: request_refund runs refund_purchase with its owner's rights and is
-- granted to authenticated, so that the app may call it for the signed-in user. It asks
-- nothing about who calls: any signed-in user can refund any workspace's pending purchase
-- (and learn any purchase's status).

CREATE FUNCTION public.request_refund(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT public.refund_purchase(p_purchase_id);
$$;

REVOKE ALL ON FUNCTION public.request_refund(uuid) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.request_refund(uuid) TO authenticated;
