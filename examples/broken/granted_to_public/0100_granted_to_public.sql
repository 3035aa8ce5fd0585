-- depends: 0002_atomic_credit_purchase
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- EXECUTE granted to PUBLIC, as the source design left it: on Supabase any signed-in
-- user could spend any workspace's credits through the REST endpoint.

GRANT EXECUTE ON FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) TO PUBLIC;
