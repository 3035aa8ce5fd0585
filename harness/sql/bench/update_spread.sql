-- Baseline: a one-row UPDATE of a random row among :spread accounts.
\set a random(1, :spread)
UPDATE bench_accounts SET balance = balance + 0.01, updated_at = now() WHERE id = bench_uuid(:a);
