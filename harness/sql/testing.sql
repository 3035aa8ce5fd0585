-- Building a marketplace for tests, verify's checks and scenarios, and reading it back.
-- Workspaces, users, members, partners and leads are plain rows; credits go through
-- add_credits, as a top-up does.

-- name: insert-workspace
INSERT INTO workspaces (name) VALUES (%(name)s) RETURNING id

-- name: insert-user
INSERT INTO users (email, full_name) VALUES (%(email)s, %(name)s) RETURNING id

-- name: insert-member
INSERT INTO workspace_members (workspace_id, user_id, role)
VALUES (%(workspace_id)s, %(user_id)s, %(role)s)

-- name: add-credits
SELECT add_credits(%(workspace_id)s, %(amount)s, %(package)s)

-- name: open-empty-account
INSERT INTO workspace_credits (workspace_id) VALUES (%(workspace_id)s)

-- name: insert-partner
INSERT INTO partners (name, base_commission_rate, bonus_commission_rate, verification_pass_rate)
VALUES (%(name)s, %(base)s, %(bonus)s, %(pass_rate)s)
RETURNING id

-- name: insert-leads
-- A named group's name goes in company (name-0, name-1, ...), so that a report can name
-- a lead; created (and updated) age_days ago.
INSERT INTO leads (partner_id, company, email, marketplace_price, max_sales, for_sale,
                   created_at, updated_at)
SELECT %(partner_id)s, %(name)s || '-' || g, %(name)s || '-' || g || '@leads.example.com',
       %(price)s, %(max_sales)s, %(for_sale)s, now() - make_interval(days => %(age_days)s),
       now() - make_interval(days => %(age_days)s)
FROM generate_series(0, %(count)s - 1) AS g
RETURNING id, company AS name

-- name: balance
SELECT balance FROM workspace_credits WHERE workspace_id = %(workspace_id)s

-- name: tables
-- Every table of the public schema except yoyo's bookkeeping: what a snapshot covers.
SELECT c.relname
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND c.relname NOT LIKE '%%yoyo%%'
ORDER BY c.relname

-- name: in-flight
-- Sessions of this database inside a transaction, other than the one asking.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND xact_start IS NOT NULL AND backend_type = 'client backend'
