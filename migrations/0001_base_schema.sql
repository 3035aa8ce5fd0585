-- Base schema of the lead marketplace: workspaces, members, partners, leads,
-- credits with a ledger, purchases with items and reservations, idempotency keys.
-- Table and column names follow the source design so that its SQL runs unchanged.

-- Supabase's API roles, created when absent (they are cluster-wide, so the rollback
-- leaves them: another database of the cluster may use them).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN;
  END IF;
END
$$;

CREATE TYPE purchase_status AS ENUM ('pending', 'completed', 'refunded');
CREATE TYPE ledger_entry_type AS ENUM ('topup', 'purchase', 'refund');

CREATE TABLE workspaces (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE CHECK (name <> ''),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email       text NOT NULL UNIQUE CHECK (position('@' IN email) > 1),
  full_name   text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
  workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE partners (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                    text NOT NULL UNIQUE CHECK (name <> ''),
  base_commission_rate    numeric(5,4) NOT NULL CHECK (base_commission_rate BETWEEN 0 AND 1),
  bonus_commission_rate   numeric(5,4) NOT NULL DEFAULT 0 CHECK (bonus_commission_rate BETWEEN 0 AND 1),
  verification_pass_rate  numeric(5,4) NOT NULL DEFAULT 0 CHECK (verification_pass_rate BETWEEN 0 AND 1),
  created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  partner_id               uuid REFERENCES partners (id),
  email                    text,
  company                  text,
  industry                 text,
  state                    char(2),
  marketplace_price        numeric(10,2) NOT NULL CHECK (marketplace_price > 0),
  intent_score_calculated  integer NOT NULL DEFAULT 50 CHECK (intent_score_calculated BETWEEN 0 AND 100),
  freshness_score          integer NOT NULL DEFAULT 100 CHECK (freshness_score BETWEEN 0 AND 100),
  for_sale                 boolean NOT NULL DEFAULT true,
  max_sales                integer CHECK (max_sales IS NULL OR max_sales >= 1),
  sold_count               integer NOT NULL DEFAULT 0 CHECK (sold_count >= 0),
  first_sold_at            timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT leads_sold_within_max_sales CHECK (max_sales IS NULL OR sold_count <= max_sales),
  CONSTRAINT leads_first_sold_when_sold CHECK ((sold_count = 0) = (first_sold_at IS NULL))
);
CREATE INDEX leads_partner_id_idx ON leads (partner_id);

CREATE TABLE workspace_credits (
  workspace_id  uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
  balance       numeric(10,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  total_used    numeric(10,2) NOT NULL DEFAULT 0 CHECK (total_used >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE marketplace_purchases (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  buyer_workspace_id  uuid NOT NULL REFERENCES workspaces (id),
  buyer_user_id       uuid NOT NULL REFERENCES users (id),
  total_leads         integer NOT NULL CHECK (total_leads > 0),
  total_price         numeric(10,2) NOT NULL CHECK (total_price > 0),
  payment_method      text NOT NULL DEFAULT 'credits' CHECK (payment_method IN ('credits', 'card')),
  credits_used        numeric(10,2) NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
  status              purchase_status NOT NULL DEFAULT 'pending',
  created_at          timestamptz NOT NULL DEFAULT now(),
  completed_at        timestamptz,
  refunded_at         timestamptz,
  CONSTRAINT purchases_completed_at_matches_status
    CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
  CONSTRAINT purchases_refunded_at_matches_status
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL))
);
CREATE INDEX marketplace_purchases_buyer_idx ON marketplace_purchases (buyer_workspace_id);
CREATE INDEX marketplace_purchases_pending_idx ON marketplace_purchases (created_at)
  WHERE status = 'pending';

CREATE TABLE marketplace_purchase_items (
  id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  purchase_id                   uuid NOT NULL REFERENCES marketplace_purchases (id) ON DELETE CASCADE,
  lead_id                       uuid NOT NULL REFERENCES leads (id),
  price_at_purchase             numeric(10,2) NOT NULL CHECK (price_at_purchase > 0),
  intent_score_at_purchase      integer,
  freshness_score_at_purchase   integer,
  partner_id                    uuid REFERENCES partners (id),
  commission_rate               numeric(5,4) CHECK (commission_rate BETWEEN 0 AND 1),
  commission_amount             numeric(10,2) CHECK (commission_amount >= 0),
  commission_bonuses            text[] NOT NULL DEFAULT '{}',
  created_at                    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT purchase_items_one_per_lead UNIQUE (purchase_id, lead_id),
  CONSTRAINT purchase_items_commission_within_price
    CHECK (commission_amount IS NULL OR commission_amount <= price_at_purchase)
);
CREATE INDEX marketplace_purchase_items_lead_idx ON marketplace_purchase_items (lead_id);

-- A lead held for a workspace by a pending or completed purchase. The primary key
-- makes "once per workspace" a fact of the schema; counting rows per lead is how
-- purchase_with_credits enforces max_sales before the lead is marked sold.
CREATE TABLE lead_reservations (
  lead_id       uuid NOT NULL REFERENCES leads (id),
  workspace_id  uuid NOT NULL REFERENCES workspaces (id),
  purchase_id   uuid NOT NULL REFERENCES marketplace_purchases (id) ON DELETE CASCADE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (lead_id, workspace_id)
);
CREATE INDEX lead_reservations_purchase_idx ON lead_reservations (purchase_id);

-- Every change of a balance, signed: top-ups and refunds positive, purchases negative.
-- sum(amount) per workspace must equal workspace_credits.balance.
CREATE TABLE credit_ledger (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  entry_type    ledger_entry_type NOT NULL,
  amount        numeric(10,2) NOT NULL CHECK (amount <> 0),
  purchase_id   uuid REFERENCES marketplace_purchases (id),
  package_name  text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_ledger_sign_matches_type
    CHECK ((entry_type = 'purchase') = (amount < 0))
);
CREATE INDEX credit_ledger_workspace_idx ON credit_ledger (workspace_id);
CREATE INDEX credit_ledger_purchase_idx ON credit_ledger (purchase_id);

CREATE TABLE api_idempotency_keys (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id         uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  idempotency_key      text NOT NULL CHECK (idempotency_key <> ''),
  request_fingerprint  text NOT NULL,
  status               text NOT NULL DEFAULT 'processing'
                         CHECK (status IN ('processing', 'completed', 'failed')),
  response_data        jsonb,
  purchase_id          uuid REFERENCES marketplace_purchases (id),
  created_at           timestamptz NOT NULL DEFAULT now(),
  completed_at         timestamptz,
  CONSTRAINT api_idempotency_keys_scope UNIQUE (workspace_id, idempotency_key)
);

-- The ledger is written by triggers on purchases, so that any function that records
-- a credit purchase (including the source design's, unchanged) leaves a ledger entry.
CREATE FUNCTION record_purchase_in_ledger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
      INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id)
      VALUES (NEW.buyer_workspace_id, 'purchase', -NEW.credits_used, NEW.id);
    END IF;
  ELSIF NEW.status = 'refunded' AND OLD.status <> 'refunded'
        AND NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
    INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id)
    VALUES (NEW.buyer_workspace_id, 'refund', NEW.credits_used, NEW.id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER marketplace_purchases_ledger
  AFTER INSERT OR UPDATE OF status ON marketplace_purchases
  FOR EACH ROW EXECUTE FUNCTION record_purchase_in_ledger();

REVOKE EXECUTE ON FUNCTION record_purchase_in_ledger() FROM PUBLIC;

-- Row level security: every table holding workspace data. The API roles see nothing
-- unless a policy says so; service_role gets an explicit all-rows policy (on Supabase
-- it also bypasses RLS).
ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_credits ENABLE ROW LEVEL SECURITY;
ALTER TABLE marketplace_purchases ENABLE ROW LEVEL SECURITY;
ALTER TABLE marketplace_purchase_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE partners ENABLE ROW LEVEL SECURITY;

CREATE POLICY service_role_all ON workspaces TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON workspace_members TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON workspace_credits TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON marketplace_purchases TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON marketplace_purchase_items TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON lead_reservations TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON credit_ledger TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON api_idempotency_keys TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON users TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON leads TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON partners TO service_role USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON
  workspaces, users, workspace_members, partners, leads, workspace_credits,
  marketplace_purchases, marketplace_purchase_items, lead_reservations, credit_ledger,
  api_idempotency_keys
TO service_role;
GRANT USAGE ON SEQUENCE credit_ledger_id_seq TO service_role;

-- A credit top-up: creates the credits account on first use, records the ledger entry.
-- Takes the credits row lock (the same first lock every purchase takes).
CREATE FUNCTION add_credits(p_workspace_id uuid, p_amount numeric, p_package_name text)
RETURNS numeric(10,2)
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_balance numeric(10,2);
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount <> round(p_amount, 2)
     OR p_amount > 99999999.99 THEN
    RAISE EXCEPTION 'Invalid amount' USING ERRCODE = 'check_violation';
  END IF;
  INSERT INTO workspace_credits AS c (workspace_id, balance)
  VALUES (p_workspace_id, p_amount)
  ON CONFLICT (workspace_id) DO UPDATE
    SET balance = c.balance + EXCLUDED.balance, updated_at = now()
  RETURNING c.balance INTO v_balance;
  INSERT INTO credit_ledger (workspace_id, entry_type, amount, package_name)
  VALUES (p_workspace_id, 'topup', p_amount, p_package_name);
  RETURN v_balance;
END;
$$;

REVOKE EXECUTE ON FUNCTION add_credits(uuid, numeric, text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION add_credits(uuid, numeric, text) TO service_role;
