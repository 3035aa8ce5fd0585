-- depends: 0002_atomic_credit_purchase
-- Row level security switched off on the ledger: the API roles' table grants would
-- then expose every workspace's entries.

ALTER TABLE credit_ledger DISABLE ROW LEVEL SECURITY;
