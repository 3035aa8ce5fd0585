-- Rollback of 0100_narrow_package_column.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

ALTER TABLE credit_ledger ALTER COLUMN package_name TYPE text;
