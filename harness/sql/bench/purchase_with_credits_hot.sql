-- purchase_with_credits on one hot workspace; each call buys the next never-bought lead
-- (a workspace buys a lead once: reusing one would only measure the refusal).
SELECT success FROM purchase_with_credits(
  bench_uuid(1), bench_uuid(1), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00, 1.00);
