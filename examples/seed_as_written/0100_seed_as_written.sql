-- depends: 0002_atomic_credit_purchase
-- The source design's two SQL functions exactly as written there (Fix #1 and Fix #2).
-- Layered over the project's migrations, it replaces the fixed functions with the
-- originals, defects included: `harness verify` must fail on it.

-- Create atomic credit purchase function
CREATE OR REPLACE FUNCTION purchase_with_credits(
  p_workspace_id UUID,
  p_user_id UUID,
  p_lead_ids UUID[],
  p_total_price DECIMAL(10,2),
  p_credits_used DECIMAL(10,2)
) RETURNS TABLE(
  success BOOLEAN,
  error_message TEXT,
  new_balance DECIMAL(10,2),
  purchase_id UUID
) AS $$
DECLARE
  v_current_balance DECIMAL(10,2);
  v_new_balance DECIMAL(10,2);
  v_purchase_id UUID;
BEGIN
  -- Lock the credits row for update
  SELECT balance INTO v_current_balance
  FROM workspace_credits
  WHERE workspace_id = p_workspace_id
  FOR UPDATE;

  -- Check if workspace has credits record
  IF NOT FOUND THEN
    RETURN QUERY SELECT FALSE, 'No credits account found', 0::DECIMAL(10,2), NULL::UUID;
    RETURN;
  END IF;

  -- Check sufficient balance
  IF v_current_balance < p_credits_used THEN
    RETURN QUERY SELECT FALSE, 'Insufficient credits', v_current_balance, NULL::UUID;
    RETURN;
  END IF;

  -- Deduct credits atomically
  UPDATE workspace_credits
  SET
    balance = balance - p_credits_used,
    total_used = total_used + p_credits_used,
    updated_at = NOW()
  WHERE workspace_id = p_workspace_id
  RETURNING balance INTO v_new_balance;

  -- Create purchase record
  INSERT INTO marketplace_purchases (
    buyer_workspace_id,
    buyer_user_id,
    total_leads,
    total_price,
    payment_method,
    credits_used,
    status
  ) VALUES (
    p_workspace_id,
    p_user_id,
    array_length(p_lead_ids, 1),
    p_total_price,
    'credits',
    p_credits_used,
    'pending'
  ) RETURNING id INTO v_purchase_id;

  -- Return success
  RETURN QUERY SELECT TRUE, NULL::TEXT, v_new_balance, v_purchase_id;
END;
$$ LANGUAGE plpgsql;

-- Batch mark leads as sold
CREATE OR REPLACE FUNCTION mark_leads_sold_batch(
  p_lead_ids UUID[]
) RETURNS INTEGER AS $$
DECLARE
  v_count INTEGER;
BEGIN
  UPDATE leads
  SET
    sold_count = sold_count + 1,
    first_sold_at = COALESCE(first_sold_at, NOW()),
    updated_at = NOW()
  WHERE id = ANY(p_lead_ids);

  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$ LANGUAGE plpgsql;
