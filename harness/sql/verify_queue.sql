-- Reading the email outbox back in the queue checks.

-- name: jobs
SELECT id, kind, status::text AS status, purchase_id, attempts, last_error,
       payload ->> 'email' AS email
FROM email_jobs
ORDER BY id

-- name: terminate
SELECT pg_terminate_backend(%s)

-- name: insert-buyer
-- A member of the workspace whose address and name are whatever the test gives: the
-- users table only asks for an @ after the first character, as a profile page might.
WITH u AS (
  INSERT INTO users (email, full_name) VALUES (%(email)s, %(name)s) RETURNING id
)
INSERT INTO workspace_members (workspace_id, user_id, role)
SELECT %(workspace_id)s, u.id, 'member' FROM u
RETURNING user_id

-- name: enqueue-raw
-- A job written straight through enqueue_email, as another writer (or a job from before
-- recipients were validated) could: the worker must still never relay it.
SELECT enqueue_email('credit_purchase', %(payload)s, NULL, NULL)

-- name: job-outcomes
SELECT id, status::text, last_error, payload ->> 'email', purchase_id
FROM email_jobs
ORDER BY id

-- name: count-purchases
SELECT count(*) FROM marketplace_purchases WHERE buyer_workspace_id = %(workspace_id)s

-- name: enqueue
SELECT enqueue_email(%s, %s, %s, %s)

-- name: jobs-of-purchase
SELECT id FROM email_jobs WHERE purchase_id = %s ORDER BY id
