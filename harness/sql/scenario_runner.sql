-- Scenario runner: building a scenario's world, observing concurrency, reading outcomes.

-- name: insert_workspace
INSERT INTO workspaces (name) VALUES (%(name)s) RETURNING id

-- name: insert_user
INSERT INTO users (email, full_name) VALUES (%(email)s, %(name)s) RETURNING id

-- name: insert_member
INSERT INTO workspace_members (workspace_id, user_id, role)
VALUES (%(workspace_id)s, %(user_id)s, %(role)s)

-- name: add_credits
SELECT add_credits(%(workspace_id)s, %(amount)s, 'scenario') AS balance

-- name: open_empty_account
INSERT INTO workspace_credits (workspace_id) VALUES (%(workspace_id)s)

-- name: insert_partner
INSERT INTO partners (name, base_commission_rate, bonus_commission_rate, verification_pass_rate)
VALUES (%(name)s, %(base)s, %(bonus)s, %(pass_rate)s)
RETURNING id

-- name: insert_leads
-- The scenario's lead name goes in company, so that a report can name a lead.
INSERT INTO leads (partner_id, company, email, marketplace_price, max_sales, created_at,
                   updated_at)
SELECT %(partner_id)s, %(name)s || '-' || g, %(name)s || '-' || g || '@leads.example.com',
       %(price)s, %(max_sales)s, now() - make_interval(days => %(age_days)s),
       now() - make_interval(days => %(age_days)s)
FROM generate_series(0, %(count)s - 1) AS g
RETURNING id, company AS name

-- name: in_flight
-- Sessions of this database running a statement or holding a transaction open,
-- the sampler itself excluded.
SELECT count(*) AS n
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND (state = 'active' OR state LIKE 'idle in transaction%')

-- name: balances
SELECT w.name, c.balance
FROM workspaces w
LEFT JOIN workspace_credits c ON c.workspace_id = w.id
ORDER BY w.name

-- name: sold_counts
SELECT id, sold_count FROM leads

-- name: email_counts
SELECT count(*) AS queued,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'dead') AS dead
FROM email_jobs
