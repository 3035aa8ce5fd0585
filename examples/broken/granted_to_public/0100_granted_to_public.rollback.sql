-- Rollback of 0100_granted_to_public.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

REVOKE EXECUTE ON FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) FROM PUBLIC;
