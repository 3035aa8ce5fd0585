-- depends: 0002_atomic_credit_purchase
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- Row level security switched off on the ledger: the API roles' table grants would
-- then expose every workspace's entries.

ALTER TABLE credit_ledger DISABLE ROW LEVEL SECURITY;
