-- depends: 0005_harden_money_functions
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
--
-- A new table after 0005, written like the others (row level security on, service_role
-- granted what it needs) but without REVOKE ALL ... FROM PUBLIC, anon, authenticated. On a
-- plain database nothing leaks; on a Supabase project, whose default privileges grant ALL
-- on every new table and sequence to anon and authenticated, both API roles may TRUNCATE
-- it, and read and write it when a policy lets them.

CREATE TABLE public.payment_webhooks (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payload      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.payment_webhooks ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON public.payment_webhooks TO service_role
  USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON public.payment_webhooks TO service_role;
