-- depends: 0002_atomic_credit_purchase
-- A release candidate that changes the body of purchase_with_credits with CREATE OR
-- REPLACE: here one comment line more, added to whatever body is installed, so that the
-- example follows 0002 as it changes. This forward file is fine: the definition it
-- re-executes keeps its SET search_path, and CREATE OR REPLACE keeps owner and grants.
DO $$
BEGIN
  EXECUTE regexp_replace(
    pg_get_functiondef('purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)'::regprocedure),
    E'\nBEGIN\n', E'\nBEGIN\n  -- 0100: release candidate\n');
END
$$;
