-- Partner lead import: find the partner, load the validated rows, skip the leads the
-- partner already has; and adding a partner.

-- name: leads_table_exists
SELECT to_regclass('leads') IS NOT NULL AND to_regclass('partners') IS NOT NULL AS present

-- name: lock_partner
-- Imports for one partner take turns (NO KEY UPDATE does not block the key-share locks
-- of the foreign keys that reference the partner, so purchases are not held up).
SELECT id, name, base_commission_rate, bonus_commission_rate, verification_pass_rate
FROM partners WHERE name = %(name)s
FOR NO KEY UPDATE

-- name: create_staging
CREATE TEMPORARY TABLE harness_import_leads (
  partner_id               uuid,
  email                    text,
  company                  text,
  industry                 text,
  state                    char(2),
  marketplace_price        numeric(10,2),
  intent_score_calculated  integer,
  freshness_score          integer,
  max_sales                integer
) ON COMMIT DROP

-- name: copy_staged
COPY harness_import_leads (partner_id, email, company, industry, state, marketplace_price,
                           intent_score_calculated, freshness_score, max_sales)
FROM STDIN

-- name: insert_new
-- Every staged lead whose email (any letter case) the partner does not have yet.
INSERT INTO leads (partner_id, email, company, industry, state, marketplace_price,
                   intent_score_calculated, freshness_score, max_sales)
SELECT s.partner_id, s.email, s.company, s.industry, s.state, s.marketplace_price,
       s.intent_score_calculated, s.freshness_score, s.max_sales
FROM harness_import_leads s
WHERE NOT EXISTS (SELECT FROM leads l
                  WHERE l.partner_id = s.partner_id AND lower(l.email) = lower(s.email))

-- name: insert_partner
INSERT INTO partners (name, base_commission_rate, bonus_commission_rate, verification_pass_rate)
VALUES (%(name)s, %(base)s, %(bonus)s, %(pass_rate)s)
ON CONFLICT (name) DO NOTHING
RETURNING id
