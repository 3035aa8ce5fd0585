-- The atomic full flow (purchase_leads_atomic: debit, items with commissions, leads sold,
-- completion, confirmation email job) spread over :spread workspaces.
\set w random(1, :spread)
SELECT purchase_leads_atomic(
  bench_uuid(:w), bench_uuid(:w), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00,
  NULL, NULL, (SELECT config FROM bench_config));
