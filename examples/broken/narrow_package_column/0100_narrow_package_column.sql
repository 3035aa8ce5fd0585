-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- Known bad: a column narrower than the API that writes it. The top-up route accepts a
-- package name of up to 100 characters (its OpenAPI document says so); the ledger keeps
-- 16, so a longer name is a database error and the route answers 500.

ALTER TABLE credit_ledger ALTER COLUMN package_name TYPE varchar(16);
