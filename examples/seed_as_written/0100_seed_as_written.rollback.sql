-- The originals cannot be un-replaced without the fixed bodies; re-apply the
-- project's 0002 migration (rollback, then migrate) to restore them.
SELECT 1;
