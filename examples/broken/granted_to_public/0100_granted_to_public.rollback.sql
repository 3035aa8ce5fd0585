REVOKE EXECUTE ON FUNCTION purchase_with_credits(uuid, uuid, uuid[], numeric, numeric) FROM PUBLIC;
