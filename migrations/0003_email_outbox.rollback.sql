DROP FUNCTION IF EXISTS enqueue_email(text, jsonb, uuid, uuid);
DROP TABLE IF EXISTS email_jobs;
DROP TYPE IF EXISTS email_job_status;
