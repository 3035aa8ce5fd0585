-- Counting the statements a function runs, through pg_stat_statements (only in a
-- scratch database; never reset, since the statistics are shared by the whole server).

-- name: create-extension
CREATE EXTENSION IF NOT EXISTS pg_stat_statements

-- name: track-nested
SET pg_stat_statements.track = 'all'

-- name: lead-updates
-- Statements run inside functions, in this database, that update leads: calls so far.
SELECT coalesce(sum(s.calls), 0)::bigint
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND NOT s.toplevel
  AND s.query ~* '\mupdate\s+leads\M'
