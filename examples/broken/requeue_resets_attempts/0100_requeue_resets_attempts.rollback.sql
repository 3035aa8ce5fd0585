-- Rollback of 0100_requeue_resets_attempts.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

DROP TRIGGER IF EXISTS email_jobs_requeue_starts_afresh ON email_jobs;
DROP FUNCTION IF EXISTS email_jobs_requeue_starts_afresh();
