-- Rollback of 0100_rls_disabled.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

ALTER TABLE credit_ledger ENABLE ROW LEVEL SECURITY;
