-- Interest accrual (banking-rules §5 "Accrual"; workers/loan/domain/accrual.py): what each
-- instalment's period has accrued so far and the part of it held in suspense (a defaulted loan's),
-- and each loan's last accrued business date. A loan disbursed before accrual existed has none
-- (null) and stays booked as received: its interest is income when paid, as before.
ALTER TABLE loan ADD COLUMN accrued_through date;
ALTER TABLE instalment
    ADD COLUMN accrues_from       date,  -- the period is (accrues_from, due_date]
    ADD COLUMN accrued_interest   bigint NOT NULL DEFAULT 0,
    ADD COLUMN suspended_interest bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT instalment_accrual_check CHECK (accrued_interest >= 0 AND accrued_interest <= interest
        AND suspended_interest >= 0 AND suspended_interest <= accrued_interest);

-- The bank-side postings the loan worker asks of the ledger at close of business: each day's
-- accrual per currency and destination, suspense turned to income as it is received or as a loan
-- recovers, income turned to suspense as a loan defaults. Made in the transaction that decided
-- them, with their ids, then asked; asked again with the same ids until the ledger has answered.
CREATE TABLE gl_posting (
    posting_id     uuid        PRIMARY KEY,
    business_date  date        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('accrual', 'suspension', 'release', 'restore')),
    currency       char(3)     NOT NULL,
    debit_code     text        NOT NULL,
    credit_code    text        NOT NULL,
    amount         bigint      NOT NULL CHECK (amount > 0),
    status         text        NOT NULL DEFAULT 'asked' CHECK (status IN ('asked', 'posted', 'refused')),
    result         text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX gl_posting_asked ON gl_posting (created_at) WHERE status = 'asked';
CREATE INDEX instalment_accruing ON instalment (loan_id) WHERE accrued_interest < interest;

-- A close's step: asking (rounds of collections), posting (what follows them is done; postings
-- still asked), done.
ALTER TABLE repayment_run DROP CONSTRAINT repayment_run_status_check;
ALTER TABLE repayment_run ADD CONSTRAINT repayment_run_status_check CHECK (status IN ('asking', 'posting', 'done'));
