-- Settings read back through the migrator's own connection.

-- name: show-lock_timeout
SHOW lock_timeout

-- name: show-statement_timeout
SHOW statement_timeout
