-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- calculate_commission compares the lead's age with the freshness window with `<` where
-- `<=` belongs: a lead sold exactly COMMISSION_FRESHNESS_DAYS after its creation loses the
-- partner its freshness bonus. Every purchase still balances; the partner is underpaid.
--
-- calculate_commission: copied whole from migrations/0005_harden_money_functions.sql with
-- the manifest's 1 replacement; everything else is 0005_harden_money_functions's.

-- Guarantees: the same rate, amount and bonuses as harness.commission.calculate_commission
-- for the same inputs; 0 <= rate <= 1 and amount <= price. Pure: reads and locks nothing.
-- A configuration that is not finite rates in [0, 1] and whole days is refused.
CREATE OR REPLACE FUNCTION public.calculate_commission(
  p_sale_price numeric,
  p_base_rate numeric,
  p_bonus_rate numeric,
  p_pass_rate numeric,
  p_lead_created_at timestamptz,
  p_sale_date timestamptz,
  p_config jsonb,
  OUT rate numeric,
  OUT amount numeric,
  OUT bonuses text[]
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bonus      numeric := coalesce(p_bonus_rate, 0);
  v_freshness  numeric := public.config_rate(p_config, 'commission_freshness_bonus_rate');
BEGIN
  rate := coalesce(p_base_rate, 0);
  bonuses := '{}';
  IF coalesce(p_pass_rate, 0) >= public.config_rate(p_config, 'commission_bonus_pass_rate')
     AND v_bonus > 0 THEN
    rate := rate + v_bonus;
    bonuses := bonuses || 'verification'::text;
  END IF;
  IF p_sale_date - p_lead_created_at
       < make_interval(days => public.config_days(p_config, 'commission_freshness_days'))
     AND v_freshness > 0 THEN
    rate := rate + v_freshness;
    bonuses := bonuses || 'freshness'::text;
  END IF;
  rate := least(rate, 1);
  amount := round(p_sale_price * rate, 2);
END;
$$;
