-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- checked_config lets an empty (or blank) download link prefix and customer name through:
-- its test asks whether the value is not a string AND of the wrong length, where either
-- belongs. Every confirmation email then carries a download link that is only the
-- purchase's id, or greets the buyer with nothing.
--
-- checked_config: copied whole from migrations/0005_harden_money_functions.sql with the
-- manifest's 1 replacement; everything else is 0010_refusal_at_one_moment's.

-- Guarantees: every key the money functions read is present and valid (rates, days, a
-- non-empty URL prefix and customer name of bounded length), else an error naming the
-- first bad key; answers p_config. Pure.
CREATE OR REPLACE FUNCTION public.checked_config(p_config jsonb) RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text;
BEGIN
  IF p_config IS NULL OR jsonb_typeof(p_config) <> 'object' THEN
    RAISE EXCEPTION 'Invalid configuration: not a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM public.config_rate(p_config, 'commission_bonus_pass_rate'),
          public.config_rate(p_config, 'commission_freshness_bonus_rate'),
          public.config_days(p_config, 'commission_freshness_days'),
          public.config_days(p_config, 'download_expiry_days');
  FOREACH v_key IN ARRAY ARRAY['download_url_prefix', 'default_customer_name'] LOOP
    IF jsonb_typeof(p_config -> v_key) IS DISTINCT FROM 'string'
       AND length(btrim(p_config ->> v_key)) NOT BETWEEN 1 AND 2000 THEN
      RAISE EXCEPTION 'Invalid configuration: % must be a non-empty string', v_key
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN p_config;
END;
$$;

REVOKE ALL ON FUNCTION checked_config(jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION checked_config(jsonb) TO service_role;
