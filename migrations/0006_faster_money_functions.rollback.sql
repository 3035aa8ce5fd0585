-- Puts back the money functions exactly as 0005 defined them (their bodies, their
-- settings: CREATE OR REPLACE keeps the owner and the grants), the ledger trigger as 0001
-- made it, and drops purchase_refusal, which only 0006's functions call.

CREATE OR REPLACE TRIGGER marketplace_purchases_ledger
  AFTER INSERT OR UPDATE OF status ON marketplace_purchases
  FOR EACH ROW EXECUTE FUNCTION record_purchase_in_ledger();

-- Guarantees: on success the balance fell by exactly p_credits_used, one pending
-- purchase and one reservation per lead exist; on failure nothing changed.
-- Locks: the workspace_credits row FOR UPDATE, then the leads FOR UPDATE in id order.
CREATE OR REPLACE FUNCTION public.purchase_with_credits(
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
SET search_path = pg_catalog, pg_temp
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
       SELECT FROM public.workspace_members m
       WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id) THEN
    RETURN QUERY SELECT false, 'Not a member of this workspace'::text,
                        NULL::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;

  -- Lock 1: the credits row.
  SELECT c.balance INTO v_balance
  FROM public.workspace_credits c
  WHERE c.workspace_id = p_workspace_id
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, 'No credits account found'::text, 0::numeric(10,2), NULL::uuid;
    RETURN;
  END IF;

  -- Lock 2: the leads, in id order, so overlapping purchases cannot deadlock. The lock
  -- is its own statement: under READ COMMITTED the next statement takes a new snapshot
  -- and so counts the reservations of whoever held the lock before us.
  PERFORM FROM public.leads ld WHERE ld.id = ANY (p_lead_ids) ORDER BY ld.id FOR UPDATE;
  SELECT count(*), sum(l.marketplace_price),
         count(*) FILTER (
           WHERE l.for_sale
             AND (l.max_sales IS NULL
                  OR (SELECT count(*) FROM public.lead_reservations r WHERE r.lead_id = l.id)
                     < l.max_sales))
  INTO v_found, v_sum, v_available
  FROM public.leads l WHERE l.id = ANY (p_lead_ids);

  IF v_found <> v_lead_count THEN
    RETURN QUERY SELECT false, 'Leads not found'::text, v_balance, NULL::uuid;
    RETURN;
  END IF;
  IF EXISTS (SELECT FROM public.lead_reservations r
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

  UPDATE public.workspace_credits c
  SET balance = c.balance - p_credits_used,
      total_used = c.total_used + p_credits_used,
      updated_at = now()
  WHERE c.workspace_id = p_workspace_id
  RETURNING c.balance INTO v_new_balance;

  INSERT INTO public.marketplace_purchases (
    buyer_workspace_id, buyer_user_id, total_leads, total_price,
    payment_method, credits_used, status
  ) VALUES (
    p_workspace_id, p_user_id, v_lead_count, p_total_price,
    'credits', p_credits_used, 'pending'
  ) RETURNING id INTO v_purchase_id;

  INSERT INTO public.lead_reservations (lead_id, workspace_id, purchase_id)
  SELECT l, p_workspace_id, v_purchase_id FROM unnest(p_lead_ids) AS l;

  RETURN QUERY SELECT true, NULL::text, v_new_balance, v_purchase_id;
END;
$$;

-- Guarantees: pending -> refunded with credits, reservations and (if marked) sales given
-- back; other statuses untouched (idempotent). Locks: credits row, purchase row, leads by id.
CREATE OR REPLACE FUNCTION public.refund_purchase(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   public.marketplace_purchases%ROWTYPE;
BEGIN
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  PERFORM FROM public.workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;

  IF v_purchase.payment_method = 'credits' AND v_purchase.credits_used > 0 THEN
    UPDATE public.workspace_credits c
    SET balance = c.balance + v_purchase.credits_used,
        total_used = greatest(c.total_used - v_purchase.credits_used, 0),
        updated_at = now()
    WHERE c.workspace_id = v_workspace;
  END IF;

  UPDATE public.marketplace_purchases p
  SET status = 'refunded', refunded_at = now()
  WHERE p.id = p_purchase_id;

  DELETE FROM public.lead_reservations r WHERE r.purchase_id = p_purchase_id;

  IF v_purchase.leads_marked_at IS NOT NULL THEN
    WITH locked AS (
      SELECT ld.id FROM public.leads ld
      WHERE ld.id IN (SELECT i.lead_id FROM public.marketplace_purchase_items i
                      WHERE i.purchase_id = p_purchase_id)
      ORDER BY ld.id
      FOR UPDATE
    )
    UPDATE public.leads l
    SET sold_count = l.sold_count - 1,
        first_sold_at = CASE WHEN l.sold_count = 1 THEN NULL ELSE l.first_sold_at END,
        updated_at = now()
    FROM locked
    WHERE l.id = locked.id AND l.sold_count > 0;
  END IF;
  RETURN 'refunded';
END;
$$;

-- Guarantees: key, debit, items with commissions, leads sold, completion and email job commit
-- together or not at all. Locks: the key (held: in_progress), then credits row, leads by id.
--
-- Answers jsonb {"status": completed | replayed | refused | in_progress | mismatch, ...}:
-- completed/replayed carry "response" {purchase_id, new_balance, total_price, leads};
-- refused carries "error_message" (a purchase_with_credits message) and "balance".
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
AS $$
DECLARE
  v_key       public.api_idempotency_keys%ROWTYPE;
  v_debit     record;
  v_marked    integer;
  v_error     text;
  v_balance   numeric(10,2);
  v_response  jsonb;
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

  BEGIN
    SELECT * INTO v_debit
    FROM public.purchase_with_credits(p_workspace_id, p_user_id, p_lead_ids,
                               p_total_price, p_total_price);
    IF NOT v_debit.success THEN
      v_error := v_debit.error_message;
      v_balance := v_debit.new_balance;
    ELSE
      INSERT INTO public.marketplace_purchase_items (
        purchase_id, lead_id, price_at_purchase, intent_score_at_purchase,
        freshness_score_at_purchase, partner_id, commission_rate, commission_amount,
        commission_bonuses
      )
      SELECT v_debit.purchase_id, l.id, l.marketplace_price, l.intent_score_calculated,
             l.freshness_score, l.partner_id, c.rate, c.amount, coalesce(c.bonuses, '{}')
      FROM public.leads l
      LEFT JOIN public.partners pt ON pt.id = l.partner_id
      LEFT JOIN LATERAL public.calculate_commission(
        l.marketplace_price, pt.base_commission_rate, pt.bonus_commission_rate,
        pt.verification_pass_rate, l.created_at, now(), p_config) c ON pt.id IS NOT NULL
      WHERE l.id = ANY (p_lead_ids);

      v_marked := public.mark_leads_sold_batch(p_lead_ids);
      IF v_marked <> cardinality(p_lead_ids) THEN
        -- A lead sold out although it was reserved: undo the whole purchase.
        RAISE EXCEPTION 'Leads no longer available' USING ERRCODE = 'P0001';
      END IF;
      UPDATE public.marketplace_purchases p SET leads_marked_at = now()
      WHERE p.id = v_debit.purchase_id;
      IF public.complete_purchase(v_debit.purchase_id) IS DISTINCT FROM 'completed' THEN
        -- Items and sales were just recorded: anything else is a defect, never a refusal.
        RAISE EXCEPTION 'Purchase % did not complete', v_debit.purchase_id
          USING ERRCODE = 'integrity_constraint_violation';
      END IF;
      PERFORM public.queue_purchase_confirmation(v_debit.purchase_id, p_config);
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
      UPDATE public.api_idempotency_keys k
      SET status = 'failed', response_data = jsonb_build_object('error_message', v_error)
      WHERE k.id = v_key.id;
    END IF;
    RETURN jsonb_build_object('status', 'refused', 'error_message', v_error,
                              'balance', v_balance::text);
  END IF;

  v_response := jsonb_build_object(
    'purchase_id', v_debit.purchase_id::text,
    'new_balance', v_debit.new_balance::text,
    'total_price', (SELECT p.total_price::text FROM public.marketplace_purchases p
                    WHERE p.id = v_debit.purchase_id),
    'leads', public.purchase_response_leads(v_debit.purchase_id));
  IF v_key.id IS NOT NULL THEN
    UPDATE public.api_idempotency_keys k
    SET status = 'completed', response_data = v_response, purchase_id = v_debit.purchase_id,
        completed_at = now()
    WHERE k.id = v_key.id;
  END IF;
  RETURN jsonb_build_object('status', 'completed', 'response', v_response);
END;
$$;

-- Guarantees: a pending purchase whose items match and whose leads were marked is completed
-- (with its email job), else refunded. Locks: credits row, purchase row (re-checked), leads.
CREATE OR REPLACE FUNCTION public.reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   public.marketplace_purchases%ROWTYPE;
  v_items      integer;
  v_sum        numeric;
BEGIN
  PERFORM public.checked_config(p_config);
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN 'missing';
  END IF;
  PERFORM FROM public.workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN 'unchanged';
  END IF;

  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM public.marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_purchase.leads_marked_at IS NOT NULL
     AND v_items = v_purchase.total_leads AND v_sum = v_purchase.total_price THEN
    PERFORM public.complete_purchase(p_purchase_id);
    PERFORM public.queue_purchase_confirmation(p_purchase_id, p_config);
    RETURN 'completed';
  END IF;
  PERFORM public.refund_purchase(p_purchase_id);
  RETURN 'refunded';
END;
$$;

DROP FUNCTION IF EXISTS public.purchase_refusal(uuid, uuid, uuid[], numeric, numeric);
