-- Rollback of 0100_replace_purchase_function.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

-- Broken on purpose: drops the function instead of restoring the released version. After
-- this rollback no purchase_with_credits exists (the atomic flow breaks), and re-applying
-- 0100 creates a new function with default privileges: EXECUTE for PUBLIC, none for
-- service_role. rollback.round-trip, rollback.data-preserved and rollback.switch-back fail.
DROP FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric);
