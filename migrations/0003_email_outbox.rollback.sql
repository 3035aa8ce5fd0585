DROP TABLE IF EXISTS email_jobs;
DROP TYPE IF EXISTS email_job_status;
