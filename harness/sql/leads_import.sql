-- Partner lead import: find the partner, load the validated rows with COPY.

-- name: leads_table_exists
SELECT to_regclass('leads') IS NOT NULL AS present

-- name: partner_by_name
SELECT id, name FROM partners WHERE name = %(name)s

-- name: copy_leads
COPY leads (partner_id, email, company, industry, state, marketplace_price,
            intent_score_calculated, freshness_score, max_sales)
FROM STDIN

