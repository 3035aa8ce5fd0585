-- depends: 0004_purchase_flow
-- Hardening, proved by the attacks of `harness verify` (docs/threat-model.md):
--
-- * Every function is redefined with `SET search_path = pg_catalog, pg_temp` and every object
--   of ours schema-qualified, so nothing a role plants in public (or any schema it may create
--   in) can shadow what the money functions call: built-ins resolve in pg_catalog first,
--   and pg_temp is never searched for functions or operators.
-- * CREATE on schema public is revoked from PUBLIC, anon and authenticated (PostgreSQL 14
--   and older, and clusters upgraded from them, grant it to PUBLIC).
-- * No privilege on our tables, sequences and functions (yoyo's bookkeeping included) is
--   left to PUBLIC, anon or authenticated, whatever default privileges the database had
--   when they were created (Supabase grants ALL to both API roles by default). What is
--   revoked is recorded, so the rollback puts back exactly what was there.
-- * The p_config the functions take is validated: finite rates in [0, 1], whole days.
-- * complete_purchase completes only a purchase whose items and sales are recorded.
-- * add_credits takes an optional payment reference: the same reference credits once.
-- * email_jobs.message_uuid: a Message-ID unique across databases and re-applied migrations.

-- What this migration takes away from PUBLIC and the API roles, for its rollback.
CREATE TABLE public.harness_revoked_privileges (
  object_kind  text NOT NULL CHECK (object_kind IN ('table', 'sequence', 'function', 'schema')),
  object_name  text NOT NULL,
  grantee      text NOT NULL,
  privilege    text NOT NULL,
  grantable    boolean NOT NULL,
  PRIMARY KEY (object_kind, object_name, grantee, privilege)
);
REVOKE ALL ON public.harness_revoked_privileges FROM PUBLIC, anon, authenticated;

DO $$
DECLARE
  v_api     oid[] := ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r
                           WHERE r.rolname IN ('anon', 'authenticated'));
  v_tables  text[] := ARRAY['workspaces', 'users', 'workspace_members', 'partners', 'leads',
                            'workspace_credits', 'marketplace_purchases',
                            'marketplace_purchase_items', 'lead_reservations', 'credit_ledger',
                            'api_idempotency_keys', 'email_jobs', '_yoyo_log',
                            '_yoyo_migration', '_yoyo_version', 'yoyo_lock'];
  v_funcs   text[] := ARRAY['record_purchase_in_ledger', 'add_credits', 'purchase_with_credits',
                            'mark_leads_sold_batch', 'enqueue_email', 'calculate_commission',
                            'complete_purchase', 'refund_purchase', 'purchase_response_leads',
                            'queue_purchase_confirmation', 'purchase_leads_atomic',
                            'reconcile_purchase'];
  r         record;
BEGIN
  -- Tables and their sequences (yoyo's only when present: it made them, not a migration).
  FOR r IN
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
           c.oid::pg_catalog.regclass::text AS name, a.grantee, a.privilege_type,
           a.is_grantable
    FROM pg_catalog.pg_class c
    CROSS JOIN LATERAL pg_catalog.aclexplode(
      coalesce(c.relacl, pg_catalog.acldefault(
        CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
    WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
      AND (a.grantee = 0 OR a.grantee = ANY (v_api))
      AND (c.relname = ANY (v_tables)
           OR (c.relkind = 'S' AND EXISTS (
                 SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                   AND t.relname = ANY (v_tables))))
  LOOP
    INSERT INTO public.harness_revoked_privileges
    VALUES (r.kind, r.name, CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                 ELSE pg_catalog.pg_get_userbyid(r.grantee) END,
            r.privilege_type, r.is_grantable)
    ON CONFLICT DO NOTHING;
  END LOOP;
  FOR r IN
    SELECT p.oid::pg_catalog.regprocedure::text AS name, a.grantee, a.privilege_type,
           a.is_grantable
    FROM pg_catalog.pg_proc p
    CROSS JOIN LATERAL pg_catalog.aclexplode(
      coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
    WHERE p.pronamespace = 'public'::pg_catalog.regnamespace AND p.proname = ANY (v_funcs)
      AND (a.grantee = 0 OR a.grantee = ANY (v_api))
  LOOP
    INSERT INTO public.harness_revoked_privileges
    VALUES ('function', r.name, CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                     ELSE pg_catalog.pg_get_userbyid(r.grantee) END,
            r.privilege_type, r.is_grantable)
    ON CONFLICT DO NOTHING;
  END LOOP;
  FOR r IN
    SELECT a.grantee FROM pg_catalog.pg_namespace n
    CROSS JOIN LATERAL pg_catalog.aclexplode(
      coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
    WHERE n.nspname = 'public' AND a.privilege_type = 'CREATE'
      AND (a.grantee = 0 OR a.grantee = ANY (v_api))
  LOOP
    INSERT INTO public.harness_revoked_privileges
    VALUES ('schema', 'public', CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                                     ELSE pg_catalog.pg_get_userbyid(r.grantee) END,
            'CREATE', false)
    ON CONFLICT DO NOTHING;
  END LOOP;

  FOR r IN SELECT DISTINCT object_kind, object_name, grantee
           FROM public.harness_revoked_privileges
  LOOP
    EXECUTE pg_catalog.format(
      CASE r.object_kind
        WHEN 'schema' THEN 'REVOKE CREATE ON SCHEMA %s FROM %s'
        ELSE 'REVOKE ALL ON ' || pg_catalog.upper(r.object_kind) || ' %s FROM %s' END,
      r.object_name,
      CASE WHEN r.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.grantee) END);
  END LOOP;
END
$$;

-- One top-up per payment reference and workspace (a payment provider's webhook may be
-- delivered twice). A table of its own rather than a column of the ledger, so that no
-- index has to be built over the ledger while purchases write to it.
CREATE TABLE public.credit_payment_references (
  workspace_id       uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
  payment_reference  text NOT NULL
                       CHECK (length(payment_reference) BETWEEN 1 AND 255),
  amount             numeric(10,2) NOT NULL CHECK (amount > 0),
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, payment_reference)
);
ALTER TABLE public.credit_payment_references ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON public.credit_payment_references TO service_role
  USING (true) WITH CHECK (true);
REVOKE ALL ON public.credit_payment_references FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT ON public.credit_payment_references TO service_role;

-- A Message-ID that no other job anywhere shares: the job id restarts at 1 in every
-- database and after 0003 is re-applied. Jobs queued before this migration keep theirs
-- (NULL here; the worker falls back to message_id), so their redeliveries stay recognisable.
ALTER TABLE public.email_jobs ADD COLUMN message_uuid uuid;
ALTER TABLE public.email_jobs ALTER COLUMN message_uuid SET DEFAULT gen_random_uuid();

-- Configuration the functions take as p_config (built by harness.money.service.sql_config):
-- read through these, a value that is not what it should be is refused, never used.
-- Guarantees: a rate in [0, 1] written as a plain decimal (no NaN, no infinity, no
-- exponent), else an error naming the key. Pure.
CREATE FUNCTION public.config_rate(p_config jsonb, p_key text) RETURNS numeric
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_text text := p_config ->> p_key;
BEGIN
  IF v_text IS NULL OR v_text !~ '^\s*\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*$'
     OR v_text::numeric > 1 THEN
    RAISE EXCEPTION 'Invalid configuration: % must be a rate between 0 and 1, not %',
      p_key, coalesce(v_text, 'missing') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_text::numeric;
END;
$$;

-- Guarantees: a whole number of days in [0, 3650], else an error naming the key. Pure.
CREATE FUNCTION public.config_days(p_config jsonb, p_key text) RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_text text := p_config ->> p_key;
BEGIN
  IF v_text IS NULL OR v_text !~ '^\s*[0-9]{1,4}\s*$' OR v_text::integer > 3650 THEN
    RAISE EXCEPTION 'Invalid configuration: % must be a whole number of days, not %',
      p_key, coalesce(v_text, 'missing') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_text::integer;
END;
$$;

-- Guarantees: every key the money functions read is present and valid (rates, days, a
-- non-empty URL prefix and customer name of bounded length), else an error naming the
-- first bad key; answers p_config. Pure.
CREATE FUNCTION public.checked_config(p_config jsonb) RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text;
BEGIN
  IF p_config IS NULL OR jsonb_typeof(p_config) <> 'object' THEN
    RAISE EXCEPTION 'Invalid configuration: not a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM public.config_rate(p_config, 'commission_bonus_pass_rate'),
          public.config_rate(p_config, 'commission_freshness_bonus_rate'),
          public.config_days(p_config, 'commission_freshness_days'),
          public.config_days(p_config, 'download_expiry_days');
  FOREACH v_key IN ARRAY ARRAY['download_url_prefix', 'default_customer_name'] LOOP
    IF jsonb_typeof(p_config -> v_key) IS DISTINCT FROM 'string'
       OR length(btrim(p_config ->> v_key)) NOT BETWEEN 1 AND 2000 THEN
      RAISE EXCEPTION 'Invalid configuration: % must be a non-empty string', v_key
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN p_config;
END;
$$;

-- The ledger is written by triggers on purchases, so that any function that records
-- a credit purchase (including the source design's, unchanged) leaves a ledger entry.
CREATE OR REPLACE FUNCTION public.record_purchase_in_ledger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
      INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, purchase_id)
      VALUES (NEW.buyer_workspace_id, 'purchase', -NEW.credits_used, NEW.id);
    END IF;
  ELSIF NEW.status = 'refunded' AND OLD.status <> 'refunded'
        AND NEW.payment_method = 'credits' AND NEW.credits_used > 0 THEN
    INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, purchase_id)
    VALUES (NEW.buyer_workspace_id, 'refund', NEW.credits_used, NEW.id);
  END IF;
  RETURN NULL;
END;
$$;

-- Guarantees: a top-up of p_amount, recorded in the ledger; with a payment reference, the
-- same reference credits this workspace once: a repeat (a payment webhook delivered twice)
-- answers the balance and credits nothing. Locks: the reference's key (a concurrent repeat
-- waits for the first to commit or fail), then the credits row.
CREATE FUNCTION public.add_credits(
  p_workspace_id uuid,
  p_amount numeric,
  p_package_name text,
  p_payment_reference text
) RETURNS numeric(10,2)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_balance  numeric(10,2);
  v_new      boolean;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount <> round(p_amount, 2)
     OR p_amount > 99999999.99 THEN
    RAISE EXCEPTION 'Invalid amount' USING ERRCODE = 'check_violation';
  END IF;
  IF p_payment_reference IS NOT NULL THEN
    IF length(p_payment_reference) NOT BETWEEN 1 AND 255
       OR p_payment_reference !~ '^[[:print:]]+$' THEN
      RAISE EXCEPTION 'Invalid payment reference' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO public.credit_payment_references (workspace_id, payment_reference, amount)
    VALUES (p_workspace_id, p_payment_reference, p_amount)
    ON CONFLICT (workspace_id, payment_reference) DO NOTHING
    RETURNING true INTO v_new;
    IF v_new IS NULL THEN  -- this payment was credited already
      SELECT c.balance INTO v_balance
      FROM public.workspace_credits c WHERE c.workspace_id = p_workspace_id;
      RETURN v_balance;
    END IF;
  END IF;
  INSERT INTO public.workspace_credits AS c (workspace_id, balance)
  VALUES (p_workspace_id, p_amount)
  ON CONFLICT (workspace_id) DO UPDATE
    SET balance = c.balance + EXCLUDED.balance, updated_at = now()
  RETURNING c.balance INTO v_balance;
  INSERT INTO public.credit_ledger (workspace_id, entry_type, amount, package_name)
  VALUES (p_workspace_id, 'topup', p_amount, p_package_name);
  RETURN v_balance;
END;
$$;

-- A credit top-up: creates the credits account on first use, records the ledger entry.
-- Takes the credits row lock (the same first lock every purchase takes). The three-argument
-- call is a top-up without a payment reference (see the four-argument one).
CREATE OR REPLACE FUNCTION public.add_credits(p_workspace_id uuid, p_amount numeric, p_package_name text)
RETURNS numeric(10,2)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT public.add_credits(p_workspace_id, p_amount, p_package_name, NULL::text);
$$;

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

-- Guarantees: each distinct lead is counted once and never beyond max_sales;
-- first_sold_at is set on the first sale only. One statement; locks leads in id order.
CREATE OR REPLACE FUNCTION public.mark_leads_sold_batch(p_lead_ids uuid[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count integer;
BEGIN
  WITH locked AS (
    SELECT ld.id FROM public.leads ld
    WHERE ld.id = ANY (p_lead_ids)
    ORDER BY ld.id
    FOR UPDATE
  )
  UPDATE public.leads l
  SET sold_count = l.sold_count + 1,
      first_sold_at = coalesce(l.first_sold_at, now()),
      updated_at = now()
  FROM locked
  WHERE l.id = locked.id
    AND (l.max_sales IS NULL OR l.sold_count < l.max_sales);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

-- Guarantees: a job exists iff the caller's transaction commits; the payload carries
-- every key its kind needs; one confirmation per purchase (a repeat returns the first
-- job's id). Takes no lock beyond the inserted row; callable from plpgsql.
CREATE OR REPLACE FUNCTION public.enqueue_email(
  p_kind text,
  p_payload jsonb,
  p_purchase_id uuid DEFAULT NULL,
  p_workspace_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_required  text[];
  v_missing   text[];
  v_id        bigint;
BEGIN
  v_required := CASE p_kind
    WHEN 'purchase_confirmation' THEN ARRAY['email', 'name', 'total_leads', 'total_price',
      'purchase_id', 'download_url', 'download_expires_at']
    WHEN 'credit_purchase' THEN ARRAY['email', 'name', 'credits_amount', 'total_price',
      'package_name', 'new_balance']
  END;
  IF v_required IS NULL THEN
    RAISE EXCEPTION 'Unknown email kind: %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
    RAISE EXCEPTION 'Email payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(k ORDER BY k) INTO v_missing
  FROM unnest(v_required) AS k
  WHERE NOT p_payload ? k OR p_payload -> k = 'null'::jsonb;
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'Email payload for % lacks: %', p_kind, array_to_string(v_missing, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_kind = 'purchase_confirmation' THEN
    IF p_purchase_id IS NULL THEN
      p_purchase_id := (p_payload ->> 'purchase_id')::uuid;
    ELSIF p_purchase_id::text <> p_payload ->> 'purchase_id' THEN
      RAISE EXCEPTION 'Email payload names another purchase than %', p_purchase_id
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;

  INSERT INTO public.email_jobs (kind, payload, purchase_id, workspace_id)
  VALUES (p_kind, p_payload, p_purchase_id, p_workspace_id)
  ON CONFLICT (purchase_id) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT j.id INTO STRICT v_id FROM public.email_jobs j WHERE j.purchase_id = p_purchase_id;
  END IF;
  RETURN v_id;
END;
$$;

-- Guarantees: the same rate, amount and bonuses as harness.commission.calculate_commission
-- for the same inputs; 0 <= rate <= 1 and amount <= price. Pure: reads and locks nothing.
-- A configuration that is not finite rates in [0, 1] and whole days is refused.
CREATE OR REPLACE FUNCTION public.calculate_commission(
  p_sale_price numeric,
  p_base_rate numeric,
  p_bonus_rate numeric,
  p_pass_rate numeric,
  p_lead_created_at timestamptz,
  p_sale_date timestamptz,
  p_config jsonb,
  OUT rate numeric,
  OUT amount numeric,
  OUT bonuses text[]
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bonus      numeric := coalesce(p_bonus_rate, 0);
  v_freshness  numeric := public.config_rate(p_config, 'commission_freshness_bonus_rate');
BEGIN
  rate := coalesce(p_base_rate, 0);
  bonuses := '{}';
  IF coalesce(p_pass_rate, 0) >= public.config_rate(p_config, 'commission_bonus_pass_rate')
     AND v_bonus > 0 THEN
    rate := rate + v_bonus;
    bonuses := bonuses || 'verification'::text;
  END IF;
  IF p_sale_date - p_lead_created_at
       <= make_interval(days => public.config_days(p_config, 'commission_freshness_days'))
     AND v_freshness > 0 THEN
    rate := rate + v_freshness;
    bonuses := bonuses || 'freshness'::text;
  END IF;
  rate := least(rate, 1);
  amount := round(p_sale_price * rate, 2);
END;
$$;

-- Guarantees: a pending purchase becomes completed only when its items match total_leads and
-- total_price and its leads were counted as sold (leads_marked_at); otherwise it stays
-- pending (and the caller learns so). Any other status is left as it is (idempotent).
-- Returns the status after the call, NULL when unknown. Locks the purchase row.
CREATE OR REPLACE FUNCTION public.complete_purchase(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_purchase  public.marketplace_purchases%ROWTYPE;
  v_items     integer;
  v_sum       numeric;
BEGIN
  SELECT * INTO v_purchase
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;
  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM public.marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_items <> v_purchase.total_leads OR v_sum <> v_purchase.total_price
     OR v_purchase.leads_marked_at IS NULL THEN
    RETURN v_purchase.status;  -- not complete until its items and its sales are recorded
  END IF;
  UPDATE public.marketplace_purchases p
  SET status = 'completed', completed_at = now()
  WHERE p.id = p_purchase_id;
  RETURN 'completed';
END;
$$;

-- Guarantees: pending -> refunded with credits, reservations and (if marked) sales given
-- back; other statuses untouched (idempotent). Locks: credits row, purchase row, leads by id.
CREATE OR REPLACE FUNCTION public.refund_purchase(p_purchase_id uuid) RETURNS public.purchase_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   public.marketplace_purchases%ROWTYPE;
BEGIN
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  PERFORM FROM public.workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN v_purchase.status;
  END IF;

  IF v_purchase.payment_method = 'credits' AND v_purchase.credits_used > 0 THEN
    UPDATE public.workspace_credits c
    SET balance = c.balance + v_purchase.credits_used,
        total_used = greatest(c.total_used - v_purchase.credits_used, 0),
        updated_at = now()
    WHERE c.workspace_id = v_workspace;
  END IF;

  UPDATE public.marketplace_purchases p
  SET status = 'refunded', refunded_at = now()
  WHERE p.id = p_purchase_id;

  DELETE FROM public.lead_reservations r WHERE r.purchase_id = p_purchase_id;

  IF v_purchase.leads_marked_at IS NOT NULL THEN
    WITH locked AS (
      SELECT ld.id FROM public.leads ld
      WHERE ld.id IN (SELECT i.lead_id FROM public.marketplace_purchase_items i
                      WHERE i.purchase_id = p_purchase_id)
      ORDER BY ld.id
      FOR UPDATE
    )
    UPDATE public.leads l
    SET sold_count = l.sold_count - 1,
        first_sold_at = CASE WHEN l.sold_count = 1 THEN NULL ELSE l.first_sold_at END,
        updated_at = now()
    FROM locked
    WHERE l.id = locked.id AND l.sold_count > 0;
  END IF;
  RETURN 'refunded';
END;
$$;

-- Guarantees: the buyer-facing details of a purchase's leads as a jsonb array ordered by
-- lead id, the same shape as the repository's get_purchased_leads. Reads only, no locks.
CREATE OR REPLACE FUNCTION public.purchase_response_leads(p_purchase_id uuid) RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'lead_id', l.id::text,
           'email', l.email,
           'company', l.company,
           'industry', l.industry,
           'state', l.state::text,
           'price_at_purchase', i.price_at_purchase::text,
           'intent_score_at_purchase', i.intent_score_at_purchase,
           'freshness_score_at_purchase', i.freshness_score_at_purchase
         ) ORDER BY l.id), '[]'::jsonb)
  FROM public.marketplace_purchase_items i
  JOIN public.leads l ON l.id = i.lead_id
  WHERE i.purchase_id = p_purchase_id;
$$;

-- Guarantees: exactly one purchase_confirmation job per purchase (a repeat returns the
-- first job's id), payload as in docs/CONTRACTS.md, through enqueue_email. No extra locks.
CREATE OR REPLACE FUNCTION public.queue_purchase_confirmation(p_purchase_id uuid, p_config jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_payload    jsonb;
  v_workspace  uuid;
BEGIN
  PERFORM public.checked_config(p_config);
  SELECT jsonb_build_object(
           'email', u.email,
           'name', coalesce(nullif(btrim(u.full_name), ''),
                            p_config ->> 'default_customer_name'),
           'total_leads', p.total_leads,
           'total_price', p.total_price::text,
           'purchase_id', p.id::text,
           'download_url', (p_config ->> 'download_url_prefix') || p.id::text,
           'download_expires_at', to_char(
             (now() + make_interval(days => (p_config ->> 'download_expiry_days')::integer))
               AT TIME ZONE 'UTC',
             'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
         p.buyer_workspace_id
  INTO v_payload, v_workspace
  FROM public.marketplace_purchases p
  JOIN public.users u ON u.id = p.buyer_user_id
  WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN public.enqueue_email('purchase_confirmation', v_payload, p_purchase_id, v_workspace);
END;
$$;

-- Guarantees: key, debit, items with commissions, leads sold, completion and email job commit
-- together or not at all. Locks: the key (held: in_progress), then credits row, leads by id.
--
-- Answers jsonb {"status": completed | replayed | refused | in_progress | mismatch, ...}:
-- completed/replayed carry "response" {purchase_id, new_balance, total_price, leads};
-- refused carries "error_message" (a purchase_with_credits message) and "balance".
CREATE OR REPLACE FUNCTION public.purchase_leads_atomic(
  p_workspace_id uuid,
  p_user_id uuid,
  p_lead_ids uuid[],
  p_total_price numeric,
  p_idempotency_key text,
  p_request_fingerprint text,
  p_config jsonb
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key       public.api_idempotency_keys%ROWTYPE;
  v_debit     record;
  v_marked    integer;
  v_error     text;
  v_balance   numeric(10,2);
  v_response  jsonb;
BEGIN
  PERFORM public.checked_config(p_config);
  IF p_idempotency_key IS NOT NULL THEN
    IF NOT pg_try_advisory_xact_lock(
         hashtextextended(p_workspace_id::text || '/' || p_idempotency_key, 0)) THEN
      RETURN jsonb_build_object('status', 'in_progress');
    END IF;
    BEGIN
      SELECT * INTO v_key FROM public.api_idempotency_keys k
      WHERE k.workspace_id = p_workspace_id AND k.idempotency_key = p_idempotency_key
      FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      RETURN jsonb_build_object('status', 'in_progress');
    END;
    IF v_key.id IS NOT NULL THEN
      IF v_key.request_fingerprint IS DISTINCT FROM p_request_fingerprint THEN
        RETURN jsonb_build_object('status', 'mismatch');
      ELSIF v_key.status = 'completed' THEN
        RETURN jsonb_build_object('status', 'replayed', 'response', v_key.response_data);
      ELSIF v_key.status = 'processing' THEN
        RETURN jsonb_build_object('status', 'in_progress');
      END IF;
      -- An earlier attempt failed: this one runs afresh under the same key.
      UPDATE public.api_idempotency_keys k
      SET status = 'processing', response_data = NULL, purchase_id = NULL, completed_at = NULL,
          created_at = now()
      WHERE k.id = v_key.id;
    ELSE
      INSERT INTO public.api_idempotency_keys (workspace_id, idempotency_key, request_fingerprint)
      VALUES (p_workspace_id, p_idempotency_key, p_request_fingerprint)
      ON CONFLICT ON CONSTRAINT api_idempotency_keys_scope DO NOTHING
      RETURNING * INTO v_key;
      IF v_key.id IS NULL THEN  -- claimed a moment ago by a stepwise or legacy request
        RETURN jsonb_build_object('status', 'in_progress');
      END IF;
    END IF;
  END IF;

  BEGIN
    SELECT * INTO v_debit
    FROM public.purchase_with_credits(p_workspace_id, p_user_id, p_lead_ids,
                               p_total_price, p_total_price);
    IF NOT v_debit.success THEN
      v_error := v_debit.error_message;
      v_balance := v_debit.new_balance;
    ELSE
      INSERT INTO public.marketplace_purchase_items (
        purchase_id, lead_id, price_at_purchase, intent_score_at_purchase,
        freshness_score_at_purchase, partner_id, commission_rate, commission_amount,
        commission_bonuses
      )
      SELECT v_debit.purchase_id, l.id, l.marketplace_price, l.intent_score_calculated,
             l.freshness_score, l.partner_id, c.rate, c.amount, coalesce(c.bonuses, '{}')
      FROM public.leads l
      LEFT JOIN public.partners pt ON pt.id = l.partner_id
      LEFT JOIN LATERAL public.calculate_commission(
        l.marketplace_price, pt.base_commission_rate, pt.bonus_commission_rate,
        pt.verification_pass_rate, l.created_at, now(), p_config) c ON pt.id IS NOT NULL
      WHERE l.id = ANY (p_lead_ids);

      v_marked := public.mark_leads_sold_batch(p_lead_ids);
      IF v_marked <> cardinality(p_lead_ids) THEN
        -- A lead sold out although it was reserved: undo the whole purchase.
        RAISE EXCEPTION 'Leads no longer available' USING ERRCODE = 'P0001';
      END IF;
      UPDATE public.marketplace_purchases p SET leads_marked_at = now()
      WHERE p.id = v_debit.purchase_id;
      IF public.complete_purchase(v_debit.purchase_id) IS DISTINCT FROM 'completed' THEN
        -- Items and sales were just recorded: anything else is a defect, never a refusal.
        RAISE EXCEPTION 'Purchase % did not complete', v_debit.purchase_id
          USING ERRCODE = 'integrity_constraint_violation';
      END IF;
      PERFORM public.queue_purchase_confirmation(v_debit.purchase_id, p_config);
    END IF;
  EXCEPTION
    WHEN raise_exception THEN
      v_error := SQLERRM;
      v_balance := NULL;
    WHEN unique_violation THEN  -- a reservation this workspace already holds
      v_error := 'Leads already purchased';
      v_balance := NULL;
  END;

  IF v_error IS NOT NULL THEN
    IF v_key.id IS NOT NULL THEN
      UPDATE public.api_idempotency_keys k
      SET status = 'failed', response_data = jsonb_build_object('error_message', v_error)
      WHERE k.id = v_key.id;
    END IF;
    RETURN jsonb_build_object('status', 'refused', 'error_message', v_error,
                              'balance', v_balance::text);
  END IF;

  v_response := jsonb_build_object(
    'purchase_id', v_debit.purchase_id::text,
    'new_balance', v_debit.new_balance::text,
    'total_price', (SELECT p.total_price::text FROM public.marketplace_purchases p
                    WHERE p.id = v_debit.purchase_id),
    'leads', public.purchase_response_leads(v_debit.purchase_id));
  IF v_key.id IS NOT NULL THEN
    UPDATE public.api_idempotency_keys k
    SET status = 'completed', response_data = v_response, purchase_id = v_debit.purchase_id,
        completed_at = now()
    WHERE k.id = v_key.id;
  END IF;
  RETURN jsonb_build_object('status', 'completed', 'response', v_response);
END;
$$;

-- Guarantees: a pending purchase whose items match and whose leads were marked is completed
-- (with its email job), else refunded. Locks: credits row, purchase row (re-checked), leads.
CREATE OR REPLACE FUNCTION public.reconcile_purchase(p_purchase_id uuid, p_config jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_workspace  uuid;
  v_purchase   public.marketplace_purchases%ROWTYPE;
  v_items      integer;
  v_sum        numeric;
BEGIN
  PERFORM public.checked_config(p_config);
  SELECT p.buyer_workspace_id INTO v_workspace
  FROM public.marketplace_purchases p WHERE p.id = p_purchase_id;
  IF NOT FOUND THEN
    RETURN 'missing';
  END IF;
  PERFORM FROM public.workspace_credits c WHERE c.workspace_id = v_workspace FOR UPDATE;
  SELECT * INTO v_purchase FROM public.marketplace_purchases p WHERE p.id = p_purchase_id FOR UPDATE;
  IF v_purchase.status <> 'pending' THEN
    RETURN 'unchanged';
  END IF;

  SELECT count(*), coalesce(sum(i.price_at_purchase), 0) INTO v_items, v_sum
  FROM public.marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id;
  IF v_purchase.leads_marked_at IS NOT NULL
     AND v_items = v_purchase.total_leads AND v_sum = v_purchase.total_price THEN
    PERFORM public.complete_purchase(p_purchase_id);
    PERFORM public.queue_purchase_confirmation(p_purchase_id, p_config);
    RETURN 'completed';
  END IF;
  PERFORM public.refund_purchase(p_purchase_id);
  RETURN 'refunded';
END;
$$;

REVOKE ALL ON FUNCTION
  public.add_credits(uuid, numeric, text, text),
  public.config_rate(jsonb, text),
  public.config_days(jsonb, text),
  public.checked_config(jsonb)
FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION
  public.add_credits(uuid, numeric, text, text),
  public.config_rate(jsonb, text),
  public.config_days(jsonb, text),
  public.checked_config(jsonb)
TO service_role;
