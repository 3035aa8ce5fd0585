-- Drops everything 0001_base_schema created except the cluster-wide API roles.
DROP TABLE IF EXISTS api_idempotency_keys;
DROP TABLE IF EXISTS credit_ledger;
DROP TABLE IF EXISTS lead_reservations;
DROP TABLE IF EXISTS marketplace_purchase_items;
DROP TABLE IF EXISTS marketplace_purchases;
DROP TABLE IF EXISTS workspace_credits;
DROP TABLE IF EXISTS leads;
DROP TABLE IF EXISTS partners;
DROP TABLE IF EXISTS workspace_members;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS workspaces;
DROP FUNCTION IF EXISTS add_credits(uuid, numeric, text);
DROP FUNCTION IF EXISTS record_purchase_in_ledger();
DROP TYPE IF EXISTS ledger_entry_type;
DROP TYPE IF EXISTS purchase_status;
