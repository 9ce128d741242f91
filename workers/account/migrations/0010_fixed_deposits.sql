-- Fixed deposits (banking-rules §2; workers/account/domain/deposits.py).
ALTER TABLE account DROP CONSTRAINT account_type_check;
ALTER TABLE account ADD CONSTRAINT account_type_check CHECK (type IN ('savings', 'current', 'fixed_deposit'));
ALTER TABLE product_version DROP CONSTRAINT product_version_type_check;
ALTER TABLE product_version ADD CONSTRAINT product_version_type_check
    CHECK (type IN ('savings', 'current', 'fixed_deposit'));

-- The business date, as the day worker publishes it (day.opened): a deposit's start and maturity.
CREATE TABLE business_day (
    id             boolean     PRIMARY KEY DEFAULT true CHECK (id),
    business_date  date        NOT NULL,
    as_of          timestamptz NOT NULL
);

-- One row per fixed deposit: its contract for the running term.
CREATE TABLE deposit (
    account_id          uuid        PRIMARY KEY REFERENCES account (account_id),
    principal           bigint      NOT NULL CHECK (principal > 0),
    rate_bps            integer     NOT NULL CHECK (rate_bps >= 0),
    term_days           integer     NOT NULL CHECK (term_days > 0),
    start_date          date,
    maturity_date       date,
    at_maturity         text        NOT NULL CHECK (at_maturity IN ('payout', 'renew')),
    payout_account_id   uuid        NOT NULL REFERENCES account (account_id),
    funding_account_id  uuid        NOT NULL REFERENCES account (account_id),
    status              text        NOT NULL
        CHECK (status IN ('funding', 'running', 'maturing', 'matured', 'closed_early', 'refused')),
    tried_on            date,  -- the business date whose close last asked the ledger to mature it
    last_interest       bigint,
    error               text,
    CHECK ((status IN ('funding', 'refused')) = (start_date IS NULL))
);
CREATE INDEX deposit_due ON deposit (maturity_date) WHERE status = 'running';
