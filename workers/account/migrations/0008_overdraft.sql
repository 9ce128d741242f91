-- Per-account overdraft (banking-rules §2): what an officer lets a current account overdraw,
-- within its product version's ceiling; the ledger's overdraft_limit is it − the minimum balance.
ALTER TABLE account ADD COLUMN overdraft_limit bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0);
