-- Rollback of 0100_widen_total_price.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

ALTER TABLE marketplace_purchases ALTER COLUMN total_price TYPE numeric(10,2);
