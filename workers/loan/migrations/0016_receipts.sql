-- Every amount a loan received, one row each (GET /v1/loans/{id}/repayments): an instalment's
-- auto-debit at close of business, a payment by hand, a foreclosure, a recovery after write-off.
-- Written with the loan.payment_received event it goes with, in the same transaction.
CREATE TABLE loan_receipt (
    receipt_id     uuid        PRIMARY KEY,  -- the payment's id; an auto-debit's derives from its loan, instalment and date
    loan_id        uuid        NOT NULL REFERENCES loan (loan_id),
    kind           text        NOT NULL CHECK (kind IN ('instalment', 'payment', 'foreclosure', 'recovery')),
    instalment     integer,                  -- an auto-debit's
    business_date  date        NOT NULL,
    amount         bigint      NOT NULL CHECK (amount > 0),
    received_at    timestamptz NOT NULL
);
CREATE INDEX loan_receipt_by_loan ON loan_receipt (loan_id, received_at DESC, receipt_id);
