-- Rollback of 0100_confirmation_for_another_purchase.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores enqueue_email as migrations/0005_harden_money_functions.sql creates it,
-- exactly.

-- Guarantees: a job exists iff the caller's transaction commits; the payload carries
-- every key its kind needs; one confirmation per purchase (a repeat returns the first
-- job's id). Takes no lock beyond the inserted row; callable from plpgsql.
CREATE OR REPLACE FUNCTION public.enqueue_email(
  p_kind text,
  p_payload jsonb,
  p_purchase_id uuid DEFAULT NULL,
  p_workspace_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_required  text[];
  v_missing   text[];
  v_id        bigint;
BEGIN
  v_required := CASE p_kind
    WHEN 'purchase_confirmation' THEN ARRAY['email', 'name', 'total_leads', 'total_price',
      'purchase_id', 'download_url', 'download_expires_at']
    WHEN 'credit_purchase' THEN ARRAY['email', 'name', 'credits_amount', 'total_price',
      'package_name', 'new_balance']
  END;
  IF v_required IS NULL THEN
    RAISE EXCEPTION 'Unknown email kind: %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
    RAISE EXCEPTION 'Email payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(k ORDER BY k) INTO v_missing
  FROM unnest(v_required) AS k
  WHERE NOT p_payload ? k OR p_payload -> k = 'null'::jsonb;
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'Email payload for % lacks: %', p_kind, array_to_string(v_missing, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_kind = 'purchase_confirmation' THEN
    IF p_purchase_id IS NULL THEN
      p_purchase_id := (p_payload ->> 'purchase_id')::uuid;
    ELSIF p_purchase_id::text <> p_payload ->> 'purchase_id' THEN
      RAISE EXCEPTION 'Email payload names another purchase than %', p_purchase_id
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;

  INSERT INTO public.email_jobs (kind, payload, purchase_id, workspace_id)
  VALUES (p_kind, p_payload, p_purchase_id, p_workspace_id)
  ON CONFLICT (purchase_id) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT j.id INTO STRICT v_id FROM public.email_jobs j WHERE j.purchase_id = p_purchase_id;
  END IF;
  RETURN v_id;
END;
$$;
