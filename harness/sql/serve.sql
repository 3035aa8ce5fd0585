-- Queries of `harness serve` (harness/drivers/serve/).

-- name: health
SELECT 1;

-- name: rate_limits_present
-- Whether migration 0009 (the rate limit counters) is installed.
SELECT to_regprocedure('http_rate_limit_hit(uuid, text, integer, integer, uuid, text)')
       IS NOT NULL;

-- name: rate_limit_hit
-- 0: go ahead; otherwise the seconds until the user's window ends.
SELECT http_rate_limit_hit(%(user_id)s, %(bucket)s, %(limit)s, %(window)s,
                           %(workspace_id)s, %(key)s);

-- name: is_member
SELECT EXISTS (SELECT FROM workspace_members m
               WHERE m.workspace_id = %(workspace_id)s AND m.user_id = %(user_id)s);

-- name: add_credits
-- A top-up credited once per payment reference (migration 0005).
SELECT add_credits(%(workspace_id)s, %(amount)s, %(package)s, %(reference)s);

-- name: payment_reference
-- The amount a reference was credited with, and whether this transaction credited it.
SELECT r.amount, r.created_at = now() AS new
FROM credit_payment_references r
WHERE r.workspace_id = %(workspace_id)s AND r.payment_reference = %(reference)s;

-- name: scenario_balances
SELECT c.workspace_id, c.balance FROM workspace_credits c
WHERE c.workspace_id = ANY (%(workspace_ids)s);

-- name: scenario_sold
SELECT l.id, l.sold_count FROM leads l WHERE l.id = ANY (%(lead_ids)s);

-- name: scenario_emails
-- The email jobs of these workspaces: ever queued, sent, dead.
SELECT count(*), count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'dead')
FROM email_jobs WHERE workspace_id = ANY (%(workspace_ids)s);
