-- depends: 0006_faster_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- purchase_with_credits with its old search path back: "public comes first so our
-- tables resolve". Its own tables are qualified, so it still works; but the built-ins it
-- calls unqualified are now looked up in public too, and a function of a better-matching
-- type wins over pg_catalog's polymorphic one whatever the order: a role that may create
-- in public (PostgreSQL 14 and older, or a grant) plants cardinality(uuid[]) and runs its
-- code with the caller's rights, service_role's or the superuser's.
--
-- purchase_with_credits: copied whole from migrations/0006_faster_money_functions.sql
-- with the manifest's 1 replacement; everything else is 0006_faster_money_functions's.

-- Guarantees: on success the balance fell by exactly p_credits_used, one pending
-- purchase and one reservation per lead exist; on failure nothing changed, and the answer
-- is 0005's (purchase_refusal).
-- Locks: the leads FOR UPDATE in id order, then the workspace_credits row (the debit, last).
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
SET search_path = public, pg_temp
SET plan_cache_mode = force_generic_plan
SET harness.ledger_writer = 'money_function'
AS $$
DECLARE
  v_lead_count   integer := coalesce(cardinality(p_lead_ids), 0);
  v_refusal      text;
  v_left         numeric(10,2);
  v_purchase_id  uuid;
BEGIN
  -- Argument checks first: they need no lock. Function arguments drop their typmod,
  -- so sub-cent and out-of-range amounts arrive here unrounded and are refused.
  IF p_total_price IS NULL OR p_total_price <= 0 OR p_total_price <> round(p_total_price, 2)
     OR p_total_price > 99999999.99 OR p_credits_used IS DISTINCT FROM p_total_price
     OR v_lead_count = 0 OR array_position(p_lead_ids, NULL) IS NOT NULL
     OR p_workspace_id IS NULL OR p_user_id IS NULL
     OR (v_lead_count > 1
         AND (SELECT count(DISTINCT l) FROM unnest(p_lead_ids) AS l) <> v_lead_count) THEN
    RETURN QUERY SELECT false, r.error_message, r.balance, NULL::uuid
                 FROM public.purchase_refusal(p_workspace_id, p_user_id, p_lead_ids,
                                              p_total_price, p_credits_used) r;
    RETURN;
  END IF;

  -- Lock 1: the leads, in id order, so overlapping purchases cannot deadlock. The lock
  -- is its own statement: under READ COMMITTED the next statement takes a new snapshot
  -- and so counts the reservations of whoever held the lock before us.
  PERFORM FROM public.leads ld WHERE ld.id = ANY (p_lead_ids) ORDER BY ld.id FOR UPDATE;

  FOR v_attempt IN 1..100 LOOP
    -- The purchase and its reservations, written only when every check passes: the caller
    -- is a member, every lead exists, is for sale, under its max_sales and not already the
    -- workspace's, the price is the leads' total, and the balance (read without a lock) is
    -- enough. The debit below decides for good.
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
                         WHERE r.workspace_id = p_workspace_id AND r.lead_id = ANY (p_lead_ids))
         AND (SELECT c.balance FROM public.workspace_credits c
              WHERE c.workspace_id = p_workspace_id) >= p_credits_used
    ), purchase AS (
      INSERT INTO public.marketplace_purchases (
        buyer_workspace_id, buyer_user_id, total_leads, total_price,
        payment_method, credits_used, status
      )
      SELECT p_workspace_id, p_user_id, v_lead_count, p_total_price,
             'credits', p_credits_used, 'pending'
      FROM allowed
      RETURNING id
    ), reservations AS (
      INSERT INTO public.lead_reservations (lead_id, workspace_id, purchase_id)
      SELECT l, p_workspace_id, p.id FROM purchase p, unnest(p_lead_ids) AS l
    )
    SELECT p.id INTO v_purchase_id FROM purchase p;
    IF v_purchase_id IS NOT NULL THEN
      -- Lock 2, last: the credits row. The debit is conditional, so a balance spent by a
      -- concurrent purchase since it was read above is never overdrawn; its ledger entry is
      -- written in the same statement, under the lock.
      RETURN QUERY
        WITH debit AS (
          UPDATE public.workspace_credits c
          SET balance = c.balance - p_credits_used,
              total_used = c.total_used + p_credits_used,
              updated_at = now()
          WHERE c.workspace_id = p_workspace_id AND c.balance >= p_credits_used
          RETURNING c.balance
        ), entry AS (
          INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, purchase_id)
          SELECT p_workspace_id, 'purchase', -p_credits_used, v_purchase_id FROM debit
        )
        SELECT true, NULL::text, d.balance, v_purchase_id FROM debit d;
      IF FOUND THEN
        RETURN;
      END IF;

      -- The balance went to a concurrent purchase: take back what this call wrote (the
      -- purchase and its reservations; nothing else can refer to a purchase no other
      -- transaction has seen), then find out why below. Rare, so undone by hand rather
      -- than by a subtransaction every call would pay for.
      DELETE FROM public.lead_reservations r WHERE r.purchase_id = v_purchase_id;
      DELETE FROM public.marketplace_purchases p WHERE p.id = v_purchase_id;
    END IF;

    -- Refused, by the checks or by the debit: why, read again (see purchase_refusal). No
    -- reason left means the state changed in between: attempt again, on the new state.
    SELECT r.error_message, r.balance INTO v_refusal, v_left
    FROM public.purchase_refusal(p_workspace_id, p_user_id, p_lead_ids,
                                 p_total_price, p_credits_used) r;
    IF v_refusal IS NOT NULL THEN
      RETURN QUERY SELECT false, v_refusal, v_left, NULL::uuid;
      RETURN;
    END IF;
  END LOOP;
  -- A hundred changes under one call: a retry will do better than an answer from any.
  RAISE EXCEPTION 'purchase state kept changing under its checks'
    USING ERRCODE = 'serialization_failure';
END;
$$;
