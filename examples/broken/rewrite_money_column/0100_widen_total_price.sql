-- depends: 0004_purchase_flow
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- Known bad: widens a money column in place. ALTER COLUMN ... TYPE rewrites the whole
-- table under an ACCESS EXCLUSIVE lock, blocking every purchase for as long as the
-- rewrite takes on a large production table. squawk's changing-column-type rule flags it;
-- the safe way is a new column, a backfill in batches, and a switch-over.

ALTER TABLE marketplace_purchases ALTER COLUMN total_price TYPE numeric(12,2);
