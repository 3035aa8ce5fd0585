-- depends: 0002_atomic_credit_purchase
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- SECURITY DEFINER with the pinned search_path removed: the function runs with its
-- owner's rights and resolves table names through the caller's search_path.

ALTER FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) SECURITY DEFINER RESET search_path;
