-- Rollback of 0100_security_definer_no_search_path.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

ALTER FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) SECURITY INVOKER SET search_path = public, pg_temp;
