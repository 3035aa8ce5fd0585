-- purchase_with_credits spread over :spread workspaces, each call a never-bought lead.
\set w random(1, :spread)
SELECT success FROM purchase_with_credits(
  bench_uuid(:w), bench_uuid(:w), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00, 1.00);
