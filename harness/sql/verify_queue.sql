-- Reading the email outbox back in the queue checks.

-- name: jobs
SELECT id, kind, status::text AS status, purchase_id, attempts, last_error,
       payload ->> 'email' AS email
FROM email_jobs
ORDER BY id

-- name: terminate
SELECT pg_terminate_backend(%s)
