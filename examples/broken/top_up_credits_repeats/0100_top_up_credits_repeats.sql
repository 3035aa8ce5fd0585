-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- add_credits without the early return for a payment reference it has seen: a payment
-- webhook delivered twice credits the workspace twice. Each credit has its own ledger entry,
-- so balances and ledgers still agree and every invariant holds; only the second answer,
-- and the balance after it, show the money created.
--
-- add_credits/4: copied whole from migrations/0005_harden_money_functions.sql with the
-- manifest's 1 replacement; everything else is 0010_refusal_at_one_moment's.

-- Guarantees: a top-up of p_amount, recorded in the ledger; with a payment reference, the
-- same reference credits this workspace once: a repeat (a payment webhook delivered twice)
-- answers the balance and credits nothing. Locks: the reference's key (a concurrent repeat
-- waits for the first to commit or fail), then the credits row.
CREATE OR REPLACE FUNCTION public.add_credits(
  p_workspace_id uuid,
  p_amount numeric,
  p_package_name text,
  p_payment_reference text
) RETURNS numeric(10,2)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_balance  numeric(10,2);
  v_new      boolean;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount <> round(p_amount, 2)
     OR p_amount > 99999999.99 THEN
    RAISE EXCEPTION 'Invalid amount' USING ERRCODE = 'check_violation';
  END IF;
  IF p_payment_reference IS NOT NULL THEN
    IF length(p_payment_reference) NOT BETWEEN 1 AND 255
       OR p_payment_reference !~ '^[[:print:]]+$' THEN
      RAISE EXCEPTION 'Invalid payment reference' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO public.credit_payment_references (workspace_id, payment_reference, amount)
    VALUES (p_workspace_id, p_payment_reference, p_amount)
    ON CONFLICT (workspace_id, payment_reference) DO NOTHING
    RETURNING true INTO v_new;
    IF v_new IS NULL THEN  -- this payment was credited already
      SELECT c.balance INTO v_balance
      FROM public.workspace_credits c WHERE c.workspace_id = p_workspace_id;
    END IF;
  END IF;
  INSERT INTO public.workspace_credits AS c (workspace_id, balance)
  VALUES (p_workspace_id, p_amount)
  ON CONFLICT (workspace_id) DO UPDATE
    SET balance = c.balance + EXCLUDED.balance, updated_at = now()
  RETURNING c.balance INTO v_balance;
  INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, package_name)
  VALUES (p_workspace_id, 'topup', p_amount, p_package_name);
  RETURN v_balance;
END;
$$;

REVOKE ALL ON FUNCTION add_credits(uuid, numeric, text, text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION add_credits(uuid, numeric, text, text) TO service_role;
