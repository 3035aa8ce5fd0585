-- The source design's purchase_with_credits, exactly as written (installed as
-- seed.purchase_with_credits in the bench database only), on one hot workspace; each call
-- takes the next lead number, as the project's runs do, though the seed never reads it.
SELECT success FROM seed.purchase_with_credits(
  bench_uuid(1), bench_uuid(1), ARRAY[bench_uuid(nextval('bench_lead_seq'))], 1.00, 1.00);
