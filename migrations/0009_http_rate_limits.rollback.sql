-- Drops everything 0009_http_rate_limits created, leaving the schema as before it.
DROP FUNCTION IF EXISTS public.http_rate_limit_hit(uuid, text, integer, integer, uuid, text);
DROP TABLE IF EXISTS public.http_rate_limit_keys;
DROP TABLE IF EXISTS public.http_rate_limits;
