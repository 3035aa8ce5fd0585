ALTER FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) SECURITY INVOKER SET search_path = public, pg_temp;
