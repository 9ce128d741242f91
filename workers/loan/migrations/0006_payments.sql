-- Manual payments of what is due (banking-rules §5 "Repayment"; workers/loan/domain/repayment.py).
-- While the ledger is asked, the instalments a payment covers are `paying` (close of business's
-- repayments leave them alone); the payment keeps each one's share and status before.
ALTER TABLE instalment DROP CONSTRAINT instalment_status_check;
ALTER TABLE instalment ADD CONSTRAINT instalment_status_check
    CHECK (status IN ('pending', 'asked', 'paying', 'paid', 'partially_paid'));

CREATE TABLE loan_payment (
    payment_id  uuid        PRIMARY KEY,
    loan_id     uuid        NOT NULL REFERENCES loan (loan_id),
    amount      bigint      NOT NULL CHECK (amount > 0),
    shares      jsonb       NOT NULL,  -- [{number, interest, principal, before}]
    status      text        NOT NULL CHECK (status IN ('asked', 'done', 'refused')),
    refusal     text,
    created_at  timestamptz NOT NULL
);
