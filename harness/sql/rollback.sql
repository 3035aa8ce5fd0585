-- The rollback rehearsal's reads: which business tables and columns exist, their rows.
-- yoyo's bookkeeping tables (%(skip)s) are not business data.

-- name: tables
SELECT c.relname AS table_name, array_agg(a.attname::text ORDER BY a.attnum) AS columns
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND NOT (c.relname = ANY (%(skip)s))
GROUP BY c.relname
ORDER BY c.relname;

-- name: plant-stale-lock
-- The row a yoyo run leaves when it dies holding the lock.
INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), %(pid)s);

-- name: reserved
SELECT count(*) AS leads FROM lead_reservations WHERE workspace_id = %(workspace_id)s;
