-- The source design's purchase_with_credits as written, spread over :spread workspaces.
\set w random(1, :spread)
SELECT success FROM seed.purchase_with_credits(
  bench_uuid(:w), bench_uuid(:w), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00, 1.00);
