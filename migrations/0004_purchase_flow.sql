-- depends: 0003_email_outbox
-- The purchase flow in the database: commissions, completion, refund, the whole purchase
-- in one transaction (purchase_leads_atomic) and the repair of purchases a crash left
-- pending (reconcile_purchase). Configuration arrives as a jsonb argument built by
-- harness.service.sql_config(), so the Python config stays the single source of numbers.
-- Lock order everywhere: workspace_credits row, then the purchase row, then leads by id.

-- Set once the purchase's leads have been counted as sold (in the same transaction as
-- the count), so a refund knows whether to give the sales back.
ALTER TABLE marketplace_purchases ADD COLUMN leads_marked_at timestamptz;

-- Guarantees: the same rate, amount and bonuses as harness.commission.calculate_commission
-- for the same inputs; 0 <= rate <= 1 and amount <= price. Pure: reads and locks nothing.
CREATE FUNCTION calculate_commission(
  p_sale_price numeric,
  p_base_rate numeric,
  p_bonus_rate numeric,
  p_pass_rate numeric,
  p_lead_created_at timestamptz,
  p_sale_date timestamptz,
  p_config jsonb,
  OUT rate numeric,
  OUT amount numeric,
  OUT bonuses text[]
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = public, pg_temp
AS $$
DECLARE
  v_bonus      numeric := coalesce(p_bonus_rate, 0);
  v_freshness  numeric := (p_config ->> 'commission_freshness_bonus_rate')::numeric;
BEGIN
  rate := coalesce(p_base_rate, 0);
  bonuses := '{}';
  IF coalesce(p_pass_rate, 0) >= (p_config ->> 'commission_bonus_pass_rate')::numeric
     AND v_bonus > 0 THEN
    rate := rate + v_bonus;
    bonuses := bonuses || 'verification'::text;
  END IF;
  IF p_sale_date - p_lead_created_at
       <= make_interval(days => (p_config ->> 'commission_freshness_days')::integer)
     AND v_freshness > 0 THEN
    rate := rate + v_freshness;
    bonuses := bonuses || 'freshness'::text;
  END IF;
  rate := least(rate, 1);
  amount := round(p_sale_price * rate, 2);
END;
$$;

-- Guarantees: a pending purchase becomes completed; any other status is left as it is
-- (idempotent). Returns the status after the call, NULL when unknown. Locks the purchase row.
CREATE FUNCTION complete_purchase(p_purchase_id uuid) RETURNS purchase_status
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_status purchase_status;
BEGIN
  UPDATE marketplace_purchases p
  SET status = 'completed', completed_at = now()
  WHERE p.id = p_purchase_id AND p.status = 'pending'
  RETURNING p.status INTO v_status;
  IF v_status IS NULL THEN
    SELECT p.status INTO v_status FROM marketplace_purchases p WHERE p.id = p_purchase_id;
  END IF;
  RETURN v_status;
END;
$$;

-- Guarantees: pending -> refunded with credits, reservations and (if marked) sales given
-- back; other statuses untouched (idempotent). Locks: credits row, purchase row, leads by id.
CREATE FUNCTION refund_purchase(p_purchase_id uuid) RETURNS purchase_status
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   marketplace_purchases%ROWTYPE;
BEGIN
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  PERFORM FROM workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;

  IF v_purchase.payment_method = 'credits' AND v_purchase.credits_used > 0 THEN
    UPDATE workspace_credits c
    SET balance = c.balance + v_purchase.credits_used,
        total_used = greatest(c.total_used - v_purchase.credits_used, 0),
        updated_at = now()
    WHERE c.workspace_id = v_workspace;
  END IF;

  UPDATE marketplace_purchases p
  SET status = 'refunded', refunded_at = now()
  WHERE p.id = p_purchase_id;

  DELETE FROM lead_reservations r WHERE r.purchase_id = p_purchase_id;

  IF v_purchase.leads_marked_at IS NOT NULL THEN
    WITH locked AS (
      SELECT ld.id FROM leads ld
      WHERE ld.id IN (SELECT i.lead_id FROM marketplace_purchase_items i
                      WHERE i.purchase_id = p_purchase_id)
      ORDER BY ld.id
      FOR UPDATE
    )
    UPDATE leads l
    SET sold_count = l.sold_count - 1,
        first_sold_at = CASE WHEN l.sold_count = 1 THEN NULL ELSE l.first_sold_at END,
        updated_at = now()
    FROM locked
    WHERE l.id = locked.id AND l.sold_count > 0;
  END IF;
  RETURN 'refunded';
END;
$$;

-- Guarantees: the buyer-facing details of a purchase's leads as a jsonb array ordered by
-- lead id, the same shape as the repository's get_purchased_leads. Reads only, no locks.
CREATE FUNCTION purchase_response_leads(p_purchase_id uuid) RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'lead_id', l.id::text,
           'email', l.email,
           'company', l.company,
           'industry', l.industry,
           'state', l.state::text,
           'price_at_purchase', i.price_at_purchase::text,
           'intent_score_at_purchase', i.intent_score_at_purchase,
           'freshness_score_at_purchase', i.freshness_score_at_purchase
         ) ORDER BY l.id), '[]'::jsonb)
  FROM marketplace_purchase_items i
  JOIN leads l ON l.id = i.lead_id
  WHERE i.purchase_id = p_purchase_id;
$$;

-- Guarantees: exactly one purchase_confirmation job per purchase (a repeat returns the
-- first job's id), payload as in docs/CONTRACTS.md, through enqueue_email. No extra locks.
CREATE FUNCTION queue_purchase_confirmation(p_purchase_id uuid, p_config jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_payload    jsonb;
  v_workspace  uuid;
BEGIN
  SELECT jsonb_build_object(
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
         p.buyer_workspace_id
  INTO v_payload, v_workspace
  FROM marketplace_purchases p
  JOIN users u ON u.id = p.buyer_user_id
  WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN enqueue_email('purchase_confirmation', v_payload, p_purchase_id, v_workspace);
END;
$$;

-- Guarantees: key, debit, items with commissions, leads sold, completion and email job commit
-- together or not at all. Locks: the key (held: in_progress), then credits row, leads by id.
--
-- Answers jsonb {"status": completed | replayed | refused | in_progress | mismatch, ...}:
-- completed/replayed carry "response" {purchase_id, new_balance, total_price, leads};
-- refused carries "error_message" (a purchase_with_credits message) and "balance".
CREATE FUNCTION purchase_leads_atomic(
  p_workspace_id uuid,
  p_user_id uuid,
  p_lead_ids uuid[],
  p_total_price numeric,
  p_idempotency_key text,
  p_request_fingerprint text,
  p_config jsonb
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_key       api_idempotency_keys%ROWTYPE;
  v_debit     record;
  v_marked    integer;
  v_error     text;
  v_balance   numeric(10,2);
  v_response  jsonb;
BEGIN
  IF p_idempotency_key IS NOT NULL THEN
    IF NOT pg_try_advisory_xact_lock(
         hashtextextended(p_workspace_id::text || '/' || p_idempotency_key, 0)) THEN
      RETURN jsonb_build_object('status', 'in_progress');
    END IF;
    BEGIN
      SELECT * INTO v_key FROM api_idempotency_keys k
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
      UPDATE api_idempotency_keys k
      SET status = 'processing', response_data = NULL, purchase_id = NULL, completed_at = NULL,
          created_at = now()
      WHERE k.id = v_key.id;
    ELSE
      INSERT INTO api_idempotency_keys (workspace_id, idempotency_key, request_fingerprint)
      VALUES (p_workspace_id, p_idempotency_key, p_request_fingerprint)
      ON CONFLICT ON CONSTRAINT api_idempotency_keys_scope DO NOTHING
      RETURNING * INTO v_key;
      IF v_key.id IS NULL THEN  -- claimed a moment ago by a stepwise or legacy request
        RETURN jsonb_build_object('status', 'in_progress');
      END IF;
    END IF;
  END IF;

  BEGIN
    SELECT * INTO v_debit
    FROM purchase_with_credits(p_workspace_id, p_user_id, p_lead_ids,
                               p_total_price, p_total_price);
    IF NOT v_debit.success THEN
      v_error := v_debit.error_message;
      v_balance := v_debit.new_balance;
    ELSE
      INSERT INTO marketplace_purchase_items (
        purchase_id, lead_id, price_at_purchase, intent_score_at_purchase,
        freshness_score_at_purchase, partner_id, commission_rate, commission_amount,
        commission_bonuses
      )
      SELECT v_debit.purchase_id, l.id, l.marketplace_price, l.intent_score_calculated,
             l.freshness_score, l.partner_id, c.rate, c.amount, coalesce(c.bonuses, '{}')
      FROM leads l
      LEFT JOIN partners pt ON pt.id = l.partner_id
      LEFT JOIN LATERAL calculate_commission(
        l.marketplace_price, pt.base_commission_rate, pt.bonus_commission_rate,
        pt.verification_pass_rate, l.created_at, now(), p_config) c ON pt.id IS NOT NULL
      WHERE l.id = ANY (p_lead_ids);

      v_marked := mark_leads_sold_batch(p_lead_ids);
      IF v_marked <> cardinality(p_lead_ids) THEN
        -- A lead sold out although it was reserved: undo the whole purchase.
        RAISE EXCEPTION 'Leads no longer available' USING ERRCODE = 'P0001';
      END IF;
      UPDATE marketplace_purchases p SET leads_marked_at = now()
      WHERE p.id = v_debit.purchase_id;
      PERFORM complete_purchase(v_debit.purchase_id);
      PERFORM queue_purchase_confirmation(v_debit.purchase_id, p_config);
    END IF;
  EXCEPTION
    WHEN raise_exception THEN
      v_error := SQLERRM;
      v_balance := NULL;
    WHEN unique_violation THEN  -- a reservation this workspace already holds
      v_error := 'Leads already purchased';
      v_balance := NULL;
  END;

  IF v_error IS NOT NULL THEN
    IF v_key.id IS NOT NULL THEN
      UPDATE api_idempotency_keys k
      SET status = 'failed', response_data = jsonb_build_object('error_message', v_error)
      WHERE k.id = v_key.id;
    END IF;
    RETURN jsonb_build_object('status', 'refused', 'error_message', v_error,
                              'balance', v_balance::text);
  END IF;

  v_response := jsonb_build_object(
    'purchase_id', v_debit.purchase_id::text,
    'new_balance', v_debit.new_balance::text,
    'total_price', (SELECT p.total_price::text FROM marketplace_purchases p
                    WHERE p.id = v_debit.purchase_id),
    'leads', purchase_response_leads(v_debit.purchase_id));
  IF v_key.id IS NOT NULL THEN
    UPDATE api_idempotency_keys k
    SET status = 'completed', response_data = v_response, purchase_id = v_debit.purchase_id,
        completed_at = now()
    WHERE k.id = v_key.id;
  END IF;
  RETURN jsonb_build_object('status', 'completed', 'response', v_response);
END;
$$;

-- Guarantees: a pending purchase whose items match and whose leads were marked is completed
-- (with its email job), else refunded. Locks: credits row, purchase row (re-checked), leads.
CREATE FUNCTION reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   marketplace_purchases%ROWTYPE;
  v_items      integer;
  v_sum        numeric;
BEGIN
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN 'missing';
  END IF;
  PERFORM FROM workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN 'unchanged';
  END IF;

  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_purchase.leads_marked_at IS NOT NULL
     AND v_items = v_purchase.total_leads AND v_sum = v_purchase.total_price THEN
    PERFORM complete_purchase(p_purchase_id);
    PERFORM queue_purchase_confirmation(p_purchase_id, p_config);
    RETURN 'completed';
  END IF;
  PERFORM refund_purchase(p_purchase_id);
  RETURN 'refunded';
END;
$$;

REVOKE EXECUTE ON FUNCTION
  calculate_commission(numeric, numeric, numeric, numeric, timestamptz, timestamptz, jsonb),
  complete_purchase(uuid),
  refund_purchase(uuid),
  purchase_response_leads(uuid),
  queue_purchase_confirmation(uuid, jsonb),
  purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb),
  reconcile_purchase(uuid, jsonb)
FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION
  calculate_commission(numeric, numeric, numeric, numeric, timestamptz, timestamptz, jsonb),
  complete_purchase(uuid),
  refund_purchase(uuid),
  purchase_response_leads(uuid),
  queue_purchase_confirmation(uuid, jsonb),
  purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb),
  reconcile_purchase(uuid, jsonb)
TO service_role;
