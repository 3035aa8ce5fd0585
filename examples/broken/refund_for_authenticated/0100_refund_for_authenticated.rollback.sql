-- Rollback of 0100_refund_for_authenticated.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

DROP FUNCTION IF EXISTS public.request_refund(uuid);
