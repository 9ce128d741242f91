-- Write-off (banking-rules §5: defaulted → written_off, terminal, recoveries still post): the loan
-- while the ledger books it, then written off; its unsettled instalments given up; recoveries are
-- payments of their own kind.
ALTER TABLE loan DROP CONSTRAINT loan_status_check;
ALTER TABLE loan ADD CONSTRAINT loan_status_check
    CHECK (status IN ('disbursing', 'refused', 'active', 'overdue', 'defaulted', 'closing', 'closed', 'writing_off', 'written_off'));
ALTER TABLE instalment DROP CONSTRAINT instalment_status_check;
ALTER TABLE instalment ADD CONSTRAINT instalment_status_check
    CHECK (status IN ('pending', 'asked', 'paying', 'paid', 'partially_paid', 'foreclosed', 'written_off'));
ALTER TABLE loan_payment DROP CONSTRAINT loan_payment_kind_check;
ALTER TABLE loan_payment ADD CONSTRAINT loan_payment_kind_check CHECK (kind IN ('due', 'foreclosure', 'recovery'));
