-- depends: 0003_email_outbox
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- "A job put back in the queue starts afresh": a trigger resets attempts whenever a job
-- returns to 'queued', so that a dead letter requeued by hand gets the full number of
-- tries again. But the worker's own retry is the same transition (sending -> queued):
-- every failed attempt resets the count, the worker's attempt limit is never reached, and
-- a job whose every send fails is retried for ever instead of being dead-lettered (and a
-- job sent at its second try says it was sent at its first).

CREATE FUNCTION email_jobs_requeue_starts_afresh() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
  NEW.attempts := 0;
  RETURN NEW;
END;
$$;

CREATE TRIGGER email_jobs_requeue_starts_afresh
  BEFORE UPDATE OF status ON email_jobs
  FOR EACH ROW
  WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
  EXECUTE FUNCTION email_jobs_requeue_starts_afresh();

REVOKE EXECUTE ON FUNCTION email_jobs_requeue_starts_afresh() FROM PUBLIC, anon, authenticated;
