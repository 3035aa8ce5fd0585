-- depends: 0010_refusal_at_one_moment
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- purchase_refusal as a VOLATILE function (a new snapshot per statement) that reads the
-- leads first and the balance after them. A refund of the workspace's pending purchase of an
-- exclusive lead, landing between the two reads, gives an answer of two moments: the lead
-- counted as taken (by the purchase the refund just undid) with the balance that refund
-- gave back, 'Leads no longer available' at 2.00, where the call's start said 'Leads
-- already purchased' at 0.00 and its end would let the purchase go. Pausing before the
-- leads read alone never shows it: the pause must fall between the reads, whatever their
-- order.
--
-- purchase_refusal: copied whole from migrations/0010_refusal_at_one_moment.sql with the
-- manifest's 3 replacements; everything else is 0010_refusal_at_one_moment's.

-- Guarantees: the answer to a purchase that purchase_with_credits must refuse: the message
-- of the first check the call fails, in the order of 0005's purchase_with_credits, and the
-- balance that goes with it; NULL when no check fails at this function's own snapshot.
-- Reads only, without locks, and all at one snapshot (STABLE: the calling statement's):
-- later than the caller's refused attempt, so its caller holds the leads' locks before it
-- asks about leads, and on NULL tries the purchase again: between the two reads a refund
-- may have given back the lead or the credits the attempt lacked, and a refusal for a
-- reason that held at neither moment is an answer no order of events explains.
CREATE OR REPLACE FUNCTION public.purchase_refusal(
  p_workspace_id uuid,
  p_user_id uuid,
  p_lead_ids uuid[],
  p_total_price numeric,
  p_credits_used numeric,
  OUT error_message text,
  OUT balance numeric(10,2)
)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_lead_count  integer := coalesce(cardinality(p_lead_ids), 0);
  v_found       integer;
  v_available   integer;
  v_sum         numeric;
BEGIN
  IF p_total_price IS NULL OR p_credits_used IS NULL
     OR p_total_price <= 0 OR p_credits_used <= 0
     OR p_total_price <> round(p_total_price, 2) OR p_credits_used <> round(p_credits_used, 2)
     OR p_total_price > 99999999.99 OR p_credits_used > 99999999.99 THEN
    error_message := 'Invalid amount';
    RETURN;
  END IF;
  IF p_credits_used <> p_total_price THEN
    error_message := 'Credits used must equal the total price';
    RETURN;
  END IF;
  IF v_lead_count = 0 THEN
    error_message := 'No leads selected';
    RETURN;
  END IF;
  IF array_position(p_lead_ids, NULL) IS NOT NULL THEN
    error_message := 'Leads not found';
    RETURN;
  END IF;
  IF (SELECT count(DISTINCT l) FROM unnest(p_lead_ids) AS l) <> v_lead_count THEN
    error_message := 'Duplicate leads selected';
    RETURN;
  END IF;
  IF p_workspace_id IS NULL OR p_user_id IS NULL OR NOT EXISTS (
       SELECT FROM public.workspace_members m
       WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id) THEN
    error_message := 'Not a member of this workspace';
    RETURN;
  END IF;

  SELECT count(*), sum(l.marketplace_price),
         count(*) FILTER (
           WHERE l.for_sale
             AND (l.max_sales IS NULL
                  OR (SELECT count(*) FROM public.lead_reservations r WHERE r.lead_id = l.id)
                     < l.max_sales))
  INTO v_found, v_sum, v_available
  FROM public.leads l WHERE l.id = ANY (p_lead_ids);
  SELECT c.balance INTO balance FROM public.workspace_credits c  -- read after the leads
  WHERE c.workspace_id = p_workspace_id;
  IF NOT FOUND THEN  -- as before, now after the leads
    error_message := 'No credits account found'; balance := 0; RETURN;
  END IF;
  IF v_found <> v_lead_count THEN
    error_message := 'Leads not found';
  ELSIF EXISTS (SELECT FROM public.lead_reservations r
                WHERE r.workspace_id = p_workspace_id AND r.lead_id = ANY (p_lead_ids)) THEN
    error_message := 'Leads already purchased';
  ELSIF v_available <> v_lead_count THEN
    error_message := 'Leads no longer available';
  ELSIF v_sum <> p_total_price THEN
    error_message := 'Total price does not match the leads';
  ELSIF balance < p_credits_used THEN
    error_message := 'Insufficient credits';
  END IF;
END;
$$;
