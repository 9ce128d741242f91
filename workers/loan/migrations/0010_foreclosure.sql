-- Foreclosure (banking-rules §5: full prepayment only): the loan closing, then closed; the
-- instalments it settled `foreclosed`; the payment's kind.
ALTER TABLE loan DROP CONSTRAINT loan_status_check;
ALTER TABLE loan ADD CONSTRAINT loan_status_check
    CHECK (status IN ('disbursing', 'refused', 'active', 'overdue', 'defaulted', 'closing', 'closed'));
ALTER TABLE instalment DROP CONSTRAINT instalment_status_check;
ALTER TABLE instalment ADD CONSTRAINT instalment_status_check
    CHECK (status IN ('pending', 'asked', 'paying', 'paid', 'partially_paid', 'foreclosed'));
ALTER TABLE loan_payment ADD COLUMN kind text NOT NULL DEFAULT 'due' CHECK (kind IN ('due', 'foreclosure'));
