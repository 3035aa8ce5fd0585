-- The faults checks' own statements (no-charge-then-fail).

-- name: insert-member
-- A member whose address is whatever the check gives (the users table asks only for an @
-- after the first character, as a profile page might).
WITH u AS (
  INSERT INTO users (email, full_name) VALUES (%(email)s, 'Victim') RETURNING id
)
INSERT INTO workspace_members (workspace_id, user_id, role)
SELECT %(workspace_id)s, u.id, 'member' FROM u
RETURNING user_id

-- name: insert-cheap-lead
-- A lead priced below MIN_MARKETPLACE_PRICE (0.05): the service refuses to sell it.
INSERT INTO leads (company, marketplace_price) VALUES ('too-cheap', 0.01) RETURNING id

-- name: sql-debit
SELECT success FROM purchase_with_credits(%(ws)s, %(user)s, %(leads)s::uuid[], %(price)s,
                                          %(price)s)

-- name: sql-atomic
SELECT purchase_leads_atomic(%(ws)s, %(user)s, %(leads)s::uuid[], %(price)s, NULL, NULL,
                             %(config)s) ->> 'status'
