-- Baseline: a one-row UPDATE of one hot row, shaped like workspace_credits.
UPDATE bench_accounts SET balance = balance + 0.01, updated_at = now() WHERE id = bench_uuid(1);
