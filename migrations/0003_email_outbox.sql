-- depends: 0002_atomic_credit_purchase
-- Transactional outbox for emails: a job row is written in the same transaction as
-- the purchase or top-up it announces, so it exists if and only if that committed.
-- Workers claim rows with FOR UPDATE SKIP LOCKED under a lease (harness/worker.py).

CREATE TYPE email_job_status AS ENUM ('queued', 'sending', 'sent', 'dead', 'cancelled');

CREATE TABLE email_jobs (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind                 text NOT NULL CHECK (kind IN ('purchase_confirmation', 'credit_purchase')),
  payload              jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  purchase_id          uuid REFERENCES marketplace_purchases (id),
  workspace_id         uuid REFERENCES workspaces (id),
  -- The de-duplication key every delivery of this job carries, redeliveries included.
  message_id           text NOT NULL GENERATED ALWAYS AS ('<email-job-' || id || '@harness>') STORED,
  status               email_job_status NOT NULL DEFAULT 'queued',
  -- Attempts begun; an attempt lost with its worker counts once its lease expires.
  attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  run_at               timestamptz NOT NULL DEFAULT now(),
  -- The worker holding the job while 'sending'; afterwards, the one that tried last.
  locked_by            text,
  locked_until         timestamptz,
  last_attempt_at      timestamptz,
  last_error           text,
  cancel_requested_at  timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  sent_at              timestamptz,
  dead_at              timestamptz,
  cancelled_at         timestamptz,
  CONSTRAINT email_jobs_one_confirmation_per_purchase UNIQUE (purchase_id),
  CONSTRAINT email_jobs_confirmation_has_purchase
    CHECK (kind <> 'purchase_confirmation' OR purchase_id IS NOT NULL),
  CONSTRAINT email_jobs_only_confirmations_name_a_purchase
    CHECK (kind = 'purchase_confirmation' OR purchase_id IS NULL),
  CONSTRAINT email_jobs_sent_at_matches_status CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
  CONSTRAINT email_jobs_dead_at_matches_status CHECK ((status = 'dead') = (dead_at IS NOT NULL)),
  CONSTRAINT email_jobs_cancelled_at_matches_status
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
  CONSTRAINT email_jobs_lease_while_sending
    CHECK ((status = 'sending') = (locked_until IS NOT NULL)),
  CONSTRAINT email_jobs_sending_has_worker CHECK (status <> 'sending' OR locked_by IS NOT NULL),
  -- A cancel request settles a queued or dead job at once, so neither ever carries one.
  CONSTRAINT email_jobs_cancel_settles_waiting_jobs
    CHECK (status NOT IN ('queued', 'dead') OR cancel_requested_at IS NULL)
);
CREATE INDEX email_jobs_runnable_idx ON email_jobs (run_at) WHERE status = 'queued';
CREATE INDEX email_jobs_lease_idx ON email_jobs (locked_until) WHERE status = 'sending';
CREATE INDEX email_jobs_dead_idx ON email_jobs (dead_at) WHERE status = 'dead';

ALTER TABLE email_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON email_jobs TO service_role USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON email_jobs TO service_role;

-- Guarantees: a job exists iff the caller's transaction commits; the payload carries
-- every key its kind needs; one confirmation per purchase (a repeat returns the first
-- job's id). Takes no lock beyond the inserted row; callable from plpgsql.
CREATE FUNCTION enqueue_email(
  p_kind text,
  p_payload jsonb,
  p_purchase_id uuid DEFAULT NULL,
  p_workspace_id uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = public, pg_temp
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

  INSERT INTO email_jobs (kind, payload, purchase_id, workspace_id)
  VALUES (p_kind, p_payload, p_purchase_id, p_workspace_id)
  ON CONFLICT (purchase_id) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT j.id INTO STRICT v_id FROM email_jobs j WHERE j.purchase_id = p_purchase_id;
  END IF;
  RETURN v_id;
END;
$$;

REVOKE EXECUTE ON FUNCTION enqueue_email(text, jsonb, uuid, uuid) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION enqueue_email(text, jsonb, uuid, uuid) TO service_role;
GRANT USAGE ON SEQUENCE email_jobs_id_seq TO service_role;
