-- The input checks' second entry point: purchase_leads_atomic, which repeats the checks
-- of purchase_with_credits in its own body.

-- name: has-atomic
SELECT to_regprocedure('public.purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, '
                       'text, jsonb)') IS NOT NULL;

-- name: buy-atomic
SELECT public.purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s);
