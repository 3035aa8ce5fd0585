-- Rollback of 0100_webhook_table_keeps_defaults.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

DROP TABLE IF EXISTS public.payment_webhooks;
