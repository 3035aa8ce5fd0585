-- Counting the statements a function runs, through pg_stat_statements (only in a
-- scratch database; never reset, since the statistics are shared by the whole server).

-- name: count-lead-statements
-- A statement-level trigger on leads, in this scratch database only: every UPDATE
-- statement on leads, whoever runs it and however deep, adds one to the counter. Works on
-- any server (no extension needed).
CREATE TABLE public.harness_verify_lead_statements (n integer NOT NULL);
INSERT INTO public.harness_verify_lead_statements VALUES (0);
CREATE FUNCTION public.harness_verify_count_lead_statement() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE public.harness_verify_lead_statements SET n = n + 1;
  RETURN NULL;
END;
$$;
CREATE TRIGGER harness_verify_count_lead_statements
  AFTER UPDATE ON public.leads
  FOR EACH STATEMENT EXECUTE FUNCTION public.harness_verify_count_lead_statement()

-- name: lead-updates
SELECT n FROM public.harness_verify_lead_statements

-- name: has-refusal
-- purchase_refusal (0006): the reason a refused attempt reads again, at a later snapshot.
SELECT to_regprocedure('public.purchase_refusal(uuid, uuid, uuid[], numeric, numeric)')
       IS NOT NULL;

-- name: purchase-made
-- The purchase an answer names, as the buyer's (inside the caller's transaction).
SELECT count(*) FROM public.marketplace_purchases
WHERE id = %s AND buyer_workspace_id = %s

-- name: refusal
SELECT error_message, balance
FROM public.purchase_refusal(%s, %s, %s::uuid[], %s, %s);

-- name: has-rate-limit
SELECT to_regprocedure('public.http_rate_limit_hit(uuid, text, integer, integer, uuid, text)')
       IS NOT NULL;

-- name: rate-limit-hit
SELECT public.http_rate_limit_hit(%s, %s, %s, %s, %s, %s);

-- name: rate-limit-window
-- The fixed window a call made now falls in (the function's own arithmetic).
SELECT floor(date_part('epoch', clock_timestamp()) / %s);

-- name: rate-limit-keys
SELECT idempotency_key FROM public.http_rate_limit_keys
WHERE workspace_id = %s AND bucket = %s ORDER BY idempotency_key;

-- name: settle-functions
-- The functions that take a purchase id and are installed here (signature -> present).
SELECT f, to_regprocedure(f) IS NOT NULL
FROM unnest(ARRAY['public.refund_purchase(uuid)', 'public.complete_purchase(uuid)',
                  'public.reconcile_purchase(uuid, jsonb)',
                  'public.queue_purchase_confirmation(uuid, jsonb)',
                  'public.purchase_response_leads(uuid)']) AS f;

-- name: settle-refund
SELECT public.refund_purchase(%(purchase)s)::text;

-- name: settle-complete
SELECT public.complete_purchase(%(purchase)s)::text;

-- name: settle-reconcile
SELECT public.reconcile_purchase(%(purchase)s, %(config)s);

-- name: settle-queue-confirmation
SELECT public.queue_purchase_confirmation(%(purchase)s, %(config)s);

-- name: settle-response-leads
SELECT public.purchase_response_leads(%(purchase)s);

-- name: has-top-up
-- add_credits with a payment reference (0005): a top-up credited once per reference.
SELECT to_regprocedure('public.add_credits(uuid, numeric, text, text)') IS NOT NULL;

-- name: top-up
SELECT public.add_credits(%(workspace)s, %(amount)s, %(package)s, %(reference)s);

-- name: top-up-rows
-- What one workspace's top-ups left: balance, ledger top-ups, recorded references.
SELECT (SELECT c.balance FROM public.workspace_credits c WHERE c.workspace_id = %(workspace)s),
       (SELECT count(*) FROM public.credit_ledger l
        WHERE l.workspace_id = %(workspace)s AND l.entry_type = 'topup'),
       (SELECT count(*) FROM public.credit_payment_references r
        WHERE r.workspace_id = %(workspace)s);

-- name: has-checked-config
SELECT to_regprocedure('public.checked_config(jsonb)') IS NOT NULL;

-- name: checked-config
SELECT public.checked_config(%s);
