-- Instalments and their repayment at close of business (banking-rules §5; workers/loan/domain/repayment.py).
CREATE TABLE instalment (
    loan_id         uuid    NOT NULL REFERENCES loan (loan_id),
    number          integer NOT NULL CHECK (number >= 1),
    due_date        date    NOT NULL,
    principal       bigint  NOT NULL CHECK (principal >= 0),
    interest        bigint  NOT NULL CHECK (interest >= 0),
    paid_principal  bigint  NOT NULL DEFAULT 0 CHECK (paid_principal >= 0 AND paid_principal <= principal),
    paid_interest   bigint  NOT NULL DEFAULT 0 CHECK (paid_interest >= 0 AND paid_interest <= interest),
    -- asked: its debits are with the ledger (the close of `asked_on` asked them)
    status          text    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'asked', 'paid', 'partially_paid')),
    asked_on        date,
    PRIMARY KEY (loan_id, number)
);
CREATE INDEX instalment_due ON instalment (due_date) WHERE status = 'pending';

-- Close of business's `loan.repayments` step, one row per business date.
CREATE TABLE repayment_run (
    business_date  date        PRIMARY KEY,
    status         text        NOT NULL CHECK (status IN ('asking', 'done')),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
