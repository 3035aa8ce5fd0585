-- Rollback of 0100_rate_limit_one_short.
-- Generated from manifest.toml by `python -m harness.proofs.variants --write`: do not edit
-- by hand (edit the manifest and regenerate).
-- Restores http_rate_limit_hit as migrations/0009_http_rate_limits.sql creates it,
-- exactly.

-- Count one request of p_user_id in p_bucket against p_limit per p_window_seconds.
-- Answers 0 when the request may go ahead, else the seconds until the window ends (the
-- Retry-After a refusal carries); a refused request leaves its key uncounted, so its
-- retry is judged afresh. Locks: the key's index entry (a concurrent request with the
-- same key waits, then finds it counted), then the user's counter row.
CREATE OR REPLACE FUNCTION public.http_rate_limit_hit(
  p_user_id uuid,
  p_bucket text,
  p_limit integer,
  p_window_seconds integer,
  p_workspace_id uuid DEFAULT NULL,
  p_idempotency_key text DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_now     timestamptz := pg_catalog.clock_timestamp();
  v_window  timestamptz;
  v_hits    integer;
  v_new     integer;
BEGIN
  IF p_user_id IS NULL OR p_bucket IS NULL OR p_limit IS NULL OR p_limit < 1
     OR p_window_seconds IS NULL OR p_window_seconds < 1 THEN
    RAISE EXCEPTION 'Invalid rate limit' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_window := pg_catalog.to_timestamp(
    pg_catalog.floor(pg_catalog.date_part('epoch', v_now) / p_window_seconds)
    * p_window_seconds);

  IF p_workspace_id IS NOT NULL AND p_idempotency_key IS NOT NULL THEN
    INSERT INTO public.http_rate_limit_keys (workspace_id, bucket, idempotency_key)
    VALUES (p_workspace_id, p_bucket, p_idempotency_key)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_new = ROW_COUNT;
    IF v_new = 0 THEN
      RETURN 0;  -- counted when the key was first seen: a retry or a replay
    END IF;
  END IF;

  INSERT INTO public.http_rate_limits AS r (user_id, bucket, window_start, hits)
  VALUES (p_user_id, p_bucket, v_window, 1)
  ON CONFLICT (user_id, bucket, window_start) DO UPDATE SET hits = r.hits + 1
  RETURNING r.hits INTO v_hits;

  -- Earlier windows of this user and bucket are done with.
  DELETE FROM public.http_rate_limits r
  WHERE r.user_id = p_user_id AND r.bucket = p_bucket AND r.window_start < v_window;

  IF v_hits > p_limit THEN
    IF p_idempotency_key IS NOT NULL THEN
      DELETE FROM public.http_rate_limit_keys k
      WHERE k.workspace_id = p_workspace_id AND k.bucket = p_bucket
        AND k.idempotency_key = p_idempotency_key;
    END IF;
    RETURN GREATEST(1, pg_catalog.ceil(pg_catalog.date_part('epoch',
      (v_window + pg_catalog.make_interval(secs => p_window_seconds)) - v_now))::integer);
  END IF;
  RETURN 0;
END;
$$;

REVOKE ALL ON FUNCTION public.http_rate_limit_hit(uuid, text, integer, integer, uuid, text)
  FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.http_rate_limit_hit(uuid, text, integer, integer, uuid, text)
  TO service_role;
