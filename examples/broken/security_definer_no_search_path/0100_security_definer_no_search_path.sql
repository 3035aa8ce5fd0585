-- depends: 0002_atomic_credit_purchase
-- SECURITY DEFINER with the pinned search_path removed: the function runs with its
-- owner's rights and resolves table names through the caller's search_path.

ALTER FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) SECURITY DEFINER RESET search_path;
