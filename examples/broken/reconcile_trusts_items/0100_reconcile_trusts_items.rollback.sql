-- The replaced body cannot be un-replaced without the project's; roll back, then
-- re-apply 0004_purchase_flow (harness rollback; harness migrate) to restore it.
SELECT 1;
