-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- purchase_leads_atomic without its idempotency block: the key is neither claimed nor
-- read, so concurrent requests under one key each run as a new purchase and a retry after
-- success is refused with 'Leads already purchased' rather than answered with the
-- purchase it repeats.
--
-- purchase_leads_atomic: copied whole from migrations/0005_harden_money_functions.sql
-- with the manifest's 1 replacement; everything else is 0005_harden_money_functions's.

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
  IF false THEN
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
