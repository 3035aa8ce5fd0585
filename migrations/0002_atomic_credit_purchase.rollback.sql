DROP FUNCTION IF EXISTS mark_leads_sold_batch(uuid[]);
DROP FUNCTION IF EXISTS purchase_with_credits(uuid, uuid, uuid[], numeric, numeric);
