-- depends: 0002_atomic_credit_purchase
-- Transactional outbox for emails: a job row is written in the same transaction as
-- the purchase or top-up it announces, so it exists if and only if that committed.

CREATE TYPE email_job_status AS ENUM ('queued', 'sending', 'sent', 'dead', 'cancelled');

CREATE TABLE email_jobs (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind              text NOT NULL CHECK (kind IN ('purchase_confirmation', 'credit_purchase')),
  payload           jsonb NOT NULL,
  purchase_id       uuid REFERENCES marketplace_purchases (id),
  workspace_id      uuid REFERENCES workspaces (id),
  status            email_job_status NOT NULL DEFAULT 'queued',
  attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  run_at            timestamptz NOT NULL DEFAULT now(),
  locked_by         text,
  locked_until      timestamptz,
  cancel_requested  boolean NOT NULL DEFAULT false,
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  sent_at           timestamptz,
  CONSTRAINT email_jobs_one_confirmation_per_purchase UNIQUE (purchase_id),
  CONSTRAINT email_jobs_confirmation_has_purchase
    CHECK (kind <> 'purchase_confirmation' OR purchase_id IS NOT NULL),
  CONSTRAINT email_jobs_sent_at_matches_status CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX email_jobs_runnable_idx ON email_jobs (run_at) WHERE status = 'queued';
CREATE INDEX email_jobs_lease_idx ON email_jobs (locked_until) WHERE status = 'sending';

ALTER TABLE email_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON email_jobs TO service_role USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON email_jobs TO service_role;
