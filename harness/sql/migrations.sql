-- The migration set against a database: what is applied, and what a rollback would drop.

-- name: applied_ids
-- yoyo's record of applied migrations; empty when yoyo never ran here.
SELECT migration_id FROM _yoyo_migration

-- name: yoyo_present
SELECT to_regclass('_yoyo_migration') IS NOT NULL AS present

-- name: relation
-- A table named the way a schema fingerprint names it (quoted, schema-qualified outside
-- public), resolved on this database: its schema and name, or no row.
SELECT n.nspname AS schema, c.relname AS name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(key)s)

-- name: column_of
SELECT a.attname AS name
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped
  AND quote_ident(a.attname) = %(column)s
