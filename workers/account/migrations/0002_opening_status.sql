-- An account waits in `opening` until the ledger has created its ledger account.
ALTER TABLE account DROP CONSTRAINT account_status_check;
ALTER TABLE account ADD CONSTRAINT account_status_check
    CHECK (status IN ('opening', 'active', 'dormant', 'frozen', 'closed', 'inactive'));
