DROP TRIGGER IF EXISTS email_jobs_requeue_starts_afresh ON email_jobs;
DROP FUNCTION IF EXISTS email_jobs_requeue_starts_afresh();
