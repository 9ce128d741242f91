-- The books as each business date closed: close of business's `ledger.trial_balance` step keeps
-- one row per (date, currency, code), so a trial balance, balance sheet and income statement can
-- be read for any closed date. Sums are numeric: many accounts' bigint totals may exceed bigint.
CREATE TABLE trial_balance (
    business_date   date        NOT NULL,
    currency        char(3)     NOT NULL,
    code            text        NOT NULL,
    accounts        integer     NOT NULL,
    debits_posted   numeric(40) NOT NULL,
    credits_posted  numeric(40) NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (business_date, currency, code)
);
