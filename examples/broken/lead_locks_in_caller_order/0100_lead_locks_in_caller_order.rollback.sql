-- The replaced body cannot be un-replaced without the project's; roll back, then
-- re-apply 0002_atomic_credit_purchase (harness rollback; harness migrate) to restore it.
SELECT 1;
