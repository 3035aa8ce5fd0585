-- Drops everything 0004_purchase_flow created, leaving the schema as 0003 left it.
DROP FUNCTION IF EXISTS reconcile_purchase(uuid, jsonb);
DROP FUNCTION IF EXISTS purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb);
DROP FUNCTION IF EXISTS queue_purchase_confirmation(uuid, jsonb);
DROP FUNCTION IF EXISTS purchase_response_leads(uuid);
DROP FUNCTION IF EXISTS refund_purchase(uuid);
DROP FUNCTION IF EXISTS complete_purchase(uuid);
DROP FUNCTION IF EXISTS
  calculate_commission(numeric, numeric, numeric, numeric, timestamptz, timestamptz, jsonb);
ALTER TABLE marketplace_purchases DROP COLUMN IF EXISTS leads_marked_at;
