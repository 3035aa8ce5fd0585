-- Rollback of 0100_search_path_public.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores purchase_with_credits as migrations/0005_harden_money_functions.sql creates
-- it, exactly.

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
