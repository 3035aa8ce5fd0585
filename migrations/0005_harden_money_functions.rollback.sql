-- Puts back the functions exactly as 0001-0004 defined them, drops what 0005 added, and
-- gives back to PUBLIC and the API roles exactly the privileges 0005 took away.

CREATE OR REPLACE FUNCTION record_purchase_in_ledger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
      INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id)
      VALUES (NEW.buyer_workspace_id, 'purchase', -NEW.credits_used, NEW.id);
    END IF;
  ELSIF NEW.status = 'refunded' AND OLD.status <> 'refunded'
        AND NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
    INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id)
    VALUES (NEW.buyer_workspace_id, 'refund', NEW.credits_used, NEW.id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION add_credits(p_workspace_id uuid, p_amount numeric, p_package_name text)
RETURNS numeric(10,2)
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_balance numeric(10,2);
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount <> round(p_amount, 2)
     OR p_amount > 99999999.99 THEN
    RAISE EXCEPTION 'Invalid amount' USING ERRCODE = 'check_violation';
  END IF;
  INSERT INTO workspace_credits AS c (workspace_id, balance)
  VALUES (p_workspace_id, p_amount)
  ON CONFLICT (workspace_id) DO UPDATE
    SET balance = c.balance + EXCLUDED.balance, updated_at = now()
  RETURNING c.balance INTO v_balance;
  INSERT INTO credit_ledger (workspace_id, entry_type, amount, package_name)
  VALUES (p_workspace_id, 'topup', p_amount, p_package_name);
  RETURN v_balance;
END;
$$;

CREATE OR REPLACE FUNCTION purchase_with_credits(
  p_workspace_id uuid,
  p_user_id uuid,
  p_lead_ids uuid[],
  p_total_price numeric(10,2),
  p_credits_used numeric(10,2)
) RETURNS TABLE (
  success boolean,
  error_message text,
  new_balance numeric(10,2),
  purchase_id uuid
)
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_balance      numeric(10,2);
  v_new_balance  numeric(10,2);
  v_purchase_id  uuid;
  v_lead_count   integer;
  v_found        integer;
  v_available    integer;
  v_sum          numeric;
BEGIN
  -- Argument checks first: they need no lock. Function arguments drop their typmod,
  -- so sub-cent and out-of-range amounts arrive here unrounded and are refused.
  IF p_total_price IS NULL OR p_credits_used IS NULL
     OR p_total_price <= 0 OR p_credits_used <= 0
     OR p_total_price <> round(p_total_price, 2) OR p_credits_used <> round(p_credits_used, 2)
     OR p_total_price > 99999999.99 OR p_credits_used > 99999999.99 THEN
    RETURN QUERY SELECT false, 'Invalid amount'::text, NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;
  IF p_credits_used <> p_total_price THEN
    RETURN QUERY SELECT false, 'Credits used must equal the total price'::text,
                        NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;
  v_lead_count := coalesce(cardinality(p_lead_ids), 0);
  IF v_lead_count = 0 THEN
    RETURN QUERY SELECT false, 'No leads selected'::text, NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;
  IF array_position(p_lead_ids, NULL) IS NOT NULL THEN
    RETURN QUERY SELECT false, 'Leads not found'::text, NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;
  IF (SELECT count(DISTINCT l) FROM unnest(p_lead_ids) AS l) <> v_lead_count THEN
    RETURN QUERY SELECT false, 'Duplicate leads selected'::text, NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;
  IF p_workspace_id IS NULL OR p_user_id IS NULL OR NOT EXISTS (
       SELECT FROM workspace_members m
       WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id) THEN
    RETURN QUERY SELECT false, 'Not a member of this workspace'::text,
                        NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;

  -- Lock 1: the credits row.
  SELECT c.balance INTO v_balance
  FROM workspace_credits c
  WHERE c.workspace_id = p_workspace_id
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, 'No credits account found'::text, 0::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;

  -- Lock 2: the leads, in id order, so overlapping purchases cannot deadlock. The lock
  -- is its own statement: under READ COMMITTED the next statement takes a new snapshot
  -- and so counts the reservations of whoever held the lock before us.
  PERFORM FROM leads ld WHERE ld.id = ANY (p_lead_ids) ORDER BY ld.id FOR UPDATE;
  SELECT count(*), sum(l.marketplace_price),
         count(*) FILTER (
           WHERE l.for_sale
             AND (l.max_sales IS NULL
                  OR (SELECT count(*) FROM lead_reservations r WHERE r.lead_id = l.id)
                     < l.max_sales))
  INTO v_found, v_sum, v_available
  FROM leads l WHERE l.id = ANY (p_lead_ids);

  IF v_found <> v_lead_count THEN
    RETURN QUERY SELECT false, 'Leads not found'::text, v_balance, NULL::uuid;
    RETURN;
  END IF;
  IF EXISTS (SELECT FROM lead_reservations r
             WHERE r.workspace_id = p_workspace_id AND r.lead_id = ANY (p_lead_ids)) THEN
    RETURN QUERY SELECT false, 'Leads already purchased'::text, v_balance, NULL::uuid;
    RETURN;
  END IF;
  IF v_available <> v_lead_count THEN
    RETURN QUERY SELECT false, 'Leads no longer available'::text, v_balance, NULL::uuid;
    RETURN;
  END IF;
  IF v_sum <> p_total_price THEN
    RETURN QUERY SELECT false, 'Total price does not match the leads'::text,
                        v_balance, NULL::uuid;
    RETURN;
  END IF;

  IF v_balance < p_credits_used THEN
    RETURN QUERY SELECT false, 'Insufficient credits'::text, v_balance, NULL::uuid;
    RETURN;
  END IF;

  UPDATE workspace_credits c
  SET balance = c.balance - p_credits_used,
      total_used = c.total_used + p_credits_used,
      updated_at = now()
  WHERE c.workspace_id = p_workspace_id
  RETURNING c.balance INTO v_new_balance;

  INSERT INTO marketplace_purchases (
    buyer_workspace_id, buyer_user_id, total_leads, total_price,
    payment_method, credits_used, status
  ) VALUES (
    p_workspace_id, p_user_id, v_lead_count, p_total_price,
    'credits', p_credits_used, 'pending'
  ) RETURNING id INTO v_purchase_id;

  INSERT INTO lead_reservations (lead_id, workspace_id, purchase_id)
  SELECT l, p_workspace_id, v_purchase_id FROM unnest(p_lead_ids) AS l;

  RETURN QUERY SELECT true, NULL::text, v_new_balance, v_purchase_id;
END;
$$;

CREATE OR REPLACE FUNCTION mark_leads_sold_batch(p_lead_ids uuid[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_count integer;
BEGIN
  WITH locked AS (
    SELECT ld.id FROM leads ld
    WHERE ld.id = ANY (p_lead_ids)
    ORDER BY ld.id
    FOR UPDATE
  )
  UPDATE leads l
  SET sold_count = l.sold_count + 1,
      first_sold_at = coalesce(l.first_sold_at, now()),
      updated_at = now()
  FROM locked
  WHERE l.id = locked.id
    AND (l.max_sales IS NULL OR l.sold_count < l.max_sales);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

CREATE OR REPLACE FUNCTION enqueue_email(
  p_kind text,
  p_payload jsonb,
  p_purchase_id uuid DEFAULT NULL,
  p_workspace_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_required  text[];
  v_missing   text[];
  v_id        bigint;
BEGIN
  v_required := CASE p_kind
    WHEN 'purchase_confirmation' THEN ARRAY['email', 'name', 'total_leads', 'total_price',
      'purchase_id', 'download_url', 'download_expires_at']
    WHEN 'credit_purchase' THEN ARRAY['email', 'name', 'credits_amount', 'total_price',
      'package_name', 'new_balance']
  END;
  IF v_required IS NULL THEN
    RAISE EXCEPTION 'Unknown email kind: %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
    RAISE EXCEPTION 'Email payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(k ORDER BY k) INTO v_missing
  FROM unnest(v_required) AS k
  WHERE NOT p_payload ? k OR p_payload -> k = 'null'::jsonb;
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'Email payload for % lacks: %', p_kind, array_to_string(v_missing, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_kind = 'purchase_confirmation' THEN
    IF p_purchase_id IS NULL THEN
      p_purchase_id := (p_payload ->> 'purchase_id')::uuid;
    ELSIF p_purchase_id::text <> p_payload ->> 'purchase_id' THEN
      RAISE EXCEPTION 'Email payload names another purchase than %', p_purchase_id
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;

  INSERT INTO email_jobs (kind, payload, purchase_id, workspace_id)
  VALUES (p_kind, p_payload, p_purchase_id, p_workspace_id)
  ON CONFLICT (purchase_id) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT j.id INTO STRICT v_id FROM email_jobs j WHERE j.purchase_id = p_purchase_id;
  END IF;
  RETURN v_id;
END;
$$;

CREATE OR REPLACE FUNCTION calculate_commission(
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

CREATE OR REPLACE FUNCTION complete_purchase(p_purchase_id uuid) RETURNS purchase_status
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

CREATE OR REPLACE FUNCTION refund_purchase(p_purchase_id uuid) RETURNS purchase_status
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

CREATE OR REPLACE FUNCTION purchase_response_leads(p_purchase_id uuid) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION queue_purchase_confirmation(p_purchase_id uuid, p_config jsonb)
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

CREATE OR REPLACE FUNCTION purchase_leads_atomic(
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

CREATE OR REPLACE FUNCTION reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
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

DROP FUNCTION IF EXISTS public.add_credits(uuid, numeric, text, text);
DROP FUNCTION IF EXISTS public.checked_config(jsonb);
DROP FUNCTION IF EXISTS public.config_days(jsonb, text);
DROP FUNCTION IF EXISTS public.config_rate(jsonb, text);
DROP TABLE IF EXISTS public.credit_payment_references;
ALTER TABLE public.email_jobs DROP COLUMN IF EXISTS message_uuid;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM public.harness_revoked_privileges LOOP
    EXECUTE pg_catalog.format(
      CASE r.object_kind
        WHEN 'schema' THEN 'GRANT CREATE ON SCHEMA %s TO %s'
        ELSE 'GRANT ' || r.privilege || ' ON ' || pg_catalog.upper(r.object_kind) || ' %s TO %s'
      END || CASE WHEN r.grantable THEN ' WITH GRANT OPTION' ELSE '' END,
      r.object_name,
      CASE WHEN r.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.grantee) END);
  END LOOP;
END
$$;
DROP TABLE IF EXISTS public.harness_revoked_privileges;
