-- Loans (banking-rules §5; workers/loan/domain/disbursement.py): one per disbursed (or being
-- disbursed) application, its view as the domain keeps it; its money lives in its own ledger account.
ALTER TABLE loan_application DROP CONSTRAINT loan_application_status_check;
ALTER TABLE loan_application ADD CONSTRAINT loan_application_status_check
    CHECK (status IN ('draft', 'submitted', 'under_review', 'approved', 'rejected', 'cancelled', 'disbursed'));

CREATE SEQUENCE loan_number;

CREATE TABLE loan (
    loan_id         uuid        PRIMARY KEY,
    application_id  uuid        NOT NULL REFERENCES loan_application (application_id),
    customer_id     uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('disbursing', 'refused', 'active')),
    view            jsonb       NOT NULL,  -- contracts.loan.LoanView
    updated_at      timestamptz NOT NULL
);
CREATE INDEX loan_by_customer ON loan (customer_id);
