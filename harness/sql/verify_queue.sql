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

-- name: confirmation-jobs
-- Every confirmation job of one purchase, as the worker will read it.
SELECT kind, payload, purchase_id, workspace_id FROM email_jobs
WHERE purchase_id = %s ORDER BY id

-- name: buyer
-- The user the confirmation is written to: address and name as stored.
SELECT email, full_name FROM users WHERE id = %s

-- name: blank-name
-- A user whose name is blank: the confirmation must fall back to the configured one.
UPDATE users SET full_name = '  ' WHERE id = %s

-- name: purchase-time
-- now() of the transaction that made the purchase.
SELECT created_at FROM marketplace_purchases WHERE id = %s

-- name: now
SELECT now()
