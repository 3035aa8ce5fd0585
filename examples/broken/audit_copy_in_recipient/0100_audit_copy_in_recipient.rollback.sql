-- Rollback of 0100_audit_copy_in_recipient.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).

DROP TRIGGER IF EXISTS email_jobs_archive_copy ON public.email_jobs;
DROP FUNCTION IF EXISTS public.email_jobs_archive_copy();
