-- Rollback of 0100_atomic_confirmation_blank_name.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores purchase_leads_atomic as migrations/0010_refusal_at_one_moment.sql creates it,
-- exactly.

-- Guarantees: key, debit, items with commissions, leads sold, completion and email job commit
-- together or not at all; a refusal is purchase_with_credits' answer. Locks: the key (held:
-- in_progress), then the leads by id, then the credits row (the debit, last).
--
-- Answers jsonb {"status": completed | replayed | refused | in_progress | mismatch, ...}:
-- completed/replayed carry "response" {purchase_id, new_balance, total_price, leads};
-- refused carries "error_message" (a purchase_with_credits message) and "balance", both
-- read at one moment (purchase_refusal's).
CREATE OR REPLACE FUNCTION public.purchase_leads_atomic(
  p_workspace_id uuid,
  p_user_id uuid,
  p_lead_ids uuid[],
  p_total_price numeric,
  p_idempotency_key text,
  p_request_fingerprint text,
  p_config jsonb
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET harness.ledger_writer = 'money_function'
AS $$
DECLARE
  v_key          public.api_idempotency_keys%ROWTYPE;
  v_lead_count   integer := coalesce(cardinality(p_lead_ids), 0);
  v_purchase_id  uuid;
  v_total        text;
  v_leads        jsonb;
  v_marked       integer;
  v_new_balance  numeric(10,2);
  v_error        text;
  v_balance      numeric(10,2);
  v_response     jsonb;
BEGIN
  PERFORM public.checked_config(p_config);
  IF p_idempotency_key IS NOT NULL THEN
    IF NOT pg_try_advisory_xact_lock(
         hashtextextended(p_workspace_id::text || '/' || p_idempotency_key, 0)) THEN
      RETURN jsonb_build_object('status', 'in_progress');
    END IF;
    BEGIN
      SELECT * INTO v_key FROM public.api_idempotency_keys k
      WHERE k.workspace_id = p_workspace_id AND k.idempotency_key = p_idempotency_key
      FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      RETURN jsonb_build_object('status', 'in_progress');
    END;
    IF v_key.id IS NOT NULL THEN
      IF v_key.request_fingerprint IS DISTINCT FROM p_request_fingerprint THEN
        RETURN jsonb_build_object('status', 'mismatch');
      ELSIF v_key.status = 'completed' THEN
        RETURN jsonb_build_object('status', 'replayed', 'response', v_key.response_data);
      ELSIF v_key.status = 'processing' THEN
        RETURN jsonb_build_object('status', 'in_progress');
      END IF;
      -- An earlier attempt failed: this one runs afresh under the same key.
      UPDATE public.api_idempotency_keys k
      SET status = 'processing', response_data = NULL, purchase_id = NULL, completed_at = NULL,
          created_at = now()
      WHERE k.id = v_key.id;
    ELSE
      INSERT INTO public.api_idempotency_keys (workspace_id, idempotency_key, request_fingerprint)
      VALUES (p_workspace_id, p_idempotency_key, p_request_fingerprint)
      ON CONFLICT ON CONSTRAINT api_idempotency_keys_scope DO NOTHING
      RETURNING * INTO v_key;
      IF v_key.id IS NULL THEN  -- claimed a moment ago by a stepwise or legacy request
        RETURN jsonb_build_object('status', 'in_progress');
      END IF;
    END IF;
  END IF;

  -- purchase_with_credits' argument checks, lock and checks, then the whole purchase.
  IF p_total_price IS NULL OR p_total_price <= 0 OR p_total_price <> round(p_total_price, 2)
     OR p_total_price > 99999999.99
     OR v_lead_count = 0 OR array_position(p_lead_ids, NULL) IS NOT NULL
     OR p_workspace_id IS NULL OR p_user_id IS NULL
     OR (v_lead_count > 1
         AND (SELECT count(DISTINCT l) FROM unnest(p_lead_ids) AS l) <> v_lead_count) THEN
    SELECT r.error_message, r.balance INTO v_error, v_balance
    FROM public.purchase_refusal(p_workspace_id, p_user_id, p_lead_ids,
                                 p_total_price, p_total_price) r;
  ELSE
    -- Lock 1: the leads, in id order (see purchase_with_credits). Taken outside the
    -- attempts' blocks, so undoing an attempt keeps them.
    PERFORM FROM public.leads ld WHERE ld.id = ANY (p_lead_ids) ORDER BY ld.id FOR UPDATE;

    -- The purchase as it ends up, written only when every check of purchase_with_credits
    -- passes: completed, its leads counted as sold, with its reservations, its items
    -- and their commissions (calculate_commission), and its confirmation email (the
    -- payload of queue_purchase_confirmation); and the response's leads (the shape of
    -- purchase_response_leads). Each attempt is a block of its own: an attempt whose
    -- debit finds the balance spent is undone whole, and the refusal is asked again.
    FOR v_attempt IN 1..100 LOOP
      BEGIN
        WITH allowed AS (
          SELECT
          FROM public.leads l
          WHERE l.id = ANY (p_lead_ids)
          HAVING count(*) = v_lead_count
             AND sum(l.marketplace_price) = p_total_price
             AND bool_and(l.for_sale
                          AND (l.max_sales IS NULL
                               OR (SELECT count(*) FROM public.lead_reservations r
                                   WHERE r.lead_id = l.id) < l.max_sales))
             AND EXISTS (SELECT FROM public.workspace_members m
                         WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id)
             AND NOT EXISTS (SELECT FROM public.lead_reservations r
                             WHERE r.workspace_id = p_workspace_id
                               AND r.lead_id = ANY (p_lead_ids))
             AND (SELECT c.balance FROM public.workspace_credits c
                  WHERE c.workspace_id = p_workspace_id) >= p_total_price
        ), purchase AS (
          INSERT INTO public.marketplace_purchases (
            buyer_workspace_id, buyer_user_id, total_leads, total_price,
            payment_method, credits_used, status, completed_at, leads_marked_at
          )
          SELECT p_workspace_id, p_user_id, v_lead_count, p_total_price,
                 'credits', p_total_price, 'completed', now(), now()
          FROM allowed
          RETURNING id, total_leads, total_price
        ), reservations AS (
          INSERT INTO public.lead_reservations (lead_id, workspace_id, purchase_id)
          SELECT l, p_workspace_id, p.id FROM purchase p, unnest(p_lead_ids) AS l
        ), items AS (
          INSERT INTO public.marketplace_purchase_items (
            purchase_id, lead_id, price_at_purchase, intent_score_at_purchase,
            freshness_score_at_purchase, partner_id, commission_rate, commission_amount,
            commission_bonuses
          )
          SELECT p.id, l.id, l.marketplace_price, l.intent_score_calculated,
                 l.freshness_score, l.partner_id, c.rate, c.amount, coalesce(c.bonuses, '{}')
          FROM purchase p
          CROSS JOIN public.leads l
          LEFT JOIN public.partners pt ON pt.id = l.partner_id
          LEFT JOIN LATERAL public.calculate_commission(
            l.marketplace_price, pt.base_commission_rate, pt.bonus_commission_rate,
            pt.verification_pass_rate, l.created_at, now(), p_config) c ON pt.id IS NOT NULL
          WHERE l.id = ANY (p_lead_ids)
          RETURNING lead_id, price_at_purchase, intent_score_at_purchase,
                    freshness_score_at_purchase
        ), sold AS (
          -- mark_leads_sold_batch's statement; the leads are this transaction's already.
          UPDATE public.leads l
          SET sold_count = l.sold_count + 1,
              first_sold_at = coalesce(l.first_sold_at, now()),
              updated_at = now()
          FROM purchase p
          WHERE l.id = ANY (p_lead_ids)
            AND (l.max_sales IS NULL OR l.sold_count < l.max_sales)
          RETURNING l.id
        ), email AS (
          INSERT INTO public.email_jobs (kind, payload, purchase_id, workspace_id)
          SELECT 'purchase_confirmation',
                 jsonb_build_object(
                   'email', u.email,
                   'name', coalesce(nullif(btrim(u.full_name), ''),
                                    p_config ->> 'default_customer_name'),
                   'total_leads', p.total_leads,
                   'total_price', p.total_price::text,
                   'purchase_id', p.id::text,
                   'download_url', (p_config ->> 'download_url_prefix') || p.id::text,
                   'download_expires_at', to_char(
                     (now() + make_interval(days => (p_config ->> 'download_expiry_days')::integer))
                       AT TIME ZONE 'UTC',
                     'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
                 p.id, p_workspace_id
          FROM purchase p
          JOIN public.users u ON u.id = p_user_id
        )
        SELECT p.id, p.total_price::text, (SELECT count(*) FROM sold),
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                         'lead_id', l.id::text,
                         'email', l.email,
                         'company', l.company,
                         'industry', l.industry,
                         'state', l.state::text,
                         'price_at_purchase', i.price_at_purchase::text,
                         'intent_score_at_purchase', i.intent_score_at_purchase,
                         'freshness_score_at_purchase', i.freshness_score_at_purchase
                       ) ORDER BY l.id), '[]'::jsonb)
                FROM items i JOIN public.leads l ON l.id = i.lead_id)
        INTO v_purchase_id, v_total, v_marked, v_leads
        FROM purchase p;
        IF v_purchase_id IS NOT NULL THEN
          IF v_marked <> v_lead_count THEN
            -- A lead sold out although it was reserved: undo the whole purchase.
            RAISE EXCEPTION 'Leads no longer available' USING ERRCODE = 'P0001';
          END IF;
          -- Lock 2, last: the credits row, for the conditional debit and its ledger entry.
          WITH debit AS (
            UPDATE public.workspace_credits c
            SET balance = c.balance - p_total_price,
                total_used = c.total_used + p_total_price,
                updated_at = now()
            WHERE c.workspace_id = p_workspace_id AND c.balance >= p_total_price
            RETURNING c.balance
          ), entry AS (
            INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, purchase_id)
            SELECT p_workspace_id, 'purchase', -p_total_price, v_purchase_id FROM debit
          )
          SELECT d.balance INTO v_new_balance FROM debit d;
          IF v_new_balance IS NULL THEN
            -- The balance went to a concurrent purchase since it was read: undo this
            -- attempt (its own SQLSTATE, caught below) and ask why, as a refusal does.
            RAISE EXCEPTION 'balance spent since it was read' USING ERRCODE = 'HM001';
          END IF;
        END IF;
      EXCEPTION
        WHEN SQLSTATE 'HM001' THEN
          v_purchase_id := NULL;  -- variables outlive the undo
        WHEN raise_exception THEN
          v_purchase_id := NULL;
          v_error := SQLERRM;
          v_balance := NULL;
        WHEN unique_violation THEN  -- a reservation this workspace already holds
          v_purchase_id := NULL;
          v_error := 'Leads already purchased';
          v_balance := NULL;
      END;
      EXIT WHEN v_purchase_id IS NOT NULL OR v_error IS NOT NULL;
      -- Refused, by the checks or by the debit: why, read again at one moment (see
      -- purchase_refusal); no reason left means the state changed in between, so attempt
      -- again on the new state. Never the balance read after the undo: a refund landing
      -- in between would pair 'Insufficient credits' with a balance that covers the price.
      SELECT r.error_message, r.balance INTO v_error, v_balance
      FROM public.purchase_refusal(p_workspace_id, p_user_id, p_lead_ids,
                                   p_total_price, p_total_price) r;
      EXIT WHEN v_error IS NOT NULL;
    END LOOP;

    IF v_purchase_id IS NULL AND v_error IS NULL THEN
      -- A hundred changes under one call (see purchase_with_credits).
      RAISE EXCEPTION 'purchase state kept changing under its checks'
        USING ERRCODE = 'serialization_failure';
    END IF;
  END IF;

  IF v_error IS NOT NULL THEN
    IF v_key.id IS NOT NULL THEN
      UPDATE public.api_idempotency_keys k
      SET status = 'failed', response_data = jsonb_build_object('error_message', v_error)
      WHERE k.id = v_key.id;
    END IF;
    RETURN jsonb_build_object('status', 'refused', 'error_message', v_error,
                              'balance', v_balance::text);
  END IF;

  v_response := jsonb_build_object(
    'purchase_id', v_purchase_id::text,
    'new_balance', v_new_balance::text,
    'total_price', v_total,
    'leads', v_leads);
  IF v_key.id IS NOT NULL THEN
    UPDATE public.api_idempotency_keys k
    SET status = 'completed', response_data = v_response, purchase_id = v_purchase_id,
        completed_at = now()
    WHERE k.id = v_key.id;
  END IF;
  RETURN jsonb_build_object('status', 'completed', 'response', v_response);
END;
$$;
