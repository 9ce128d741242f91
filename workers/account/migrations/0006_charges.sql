-- Monthly charges (banking-rules §2; workers/account/domain/charges.py).
-- Each open account's Σ day-end balance × days, per calendar month: the month's average day-end
-- balance is it / the days the account was open. Kept by the `account.interest` step's pass over
-- the ledger's day-end balances (zero balances add nothing and have no row).
CREATE TABLE balance_month (
    account_id       uuid        NOT NULL REFERENCES account (account_id),
    month_end        date        NOT NULL,
    counted_from     date        NOT NULL,
    counted_through  date        NOT NULL,
    balance_days     numeric(40) NOT NULL,
    PRIMARY KEY (account_id, month_end),
    CHECK (counted_from <= counted_through AND counted_through <= month_end)
);

-- One row per account, fee and month: asked of the ledger as a balancing debit to fee_income;
-- `collected` is what the ledger could take above the account's floor (the rest is not chased).
CREATE TABLE account_charge (
    account_id   uuid        NOT NULL REFERENCES account (account_id),
    kind         text        NOT NULL CHECK (kind IN ('maintenance', 'shortfall')),
    month_end    date        NOT NULL,
    fee          bigint      NOT NULL CHECK (fee > 0),
    collected    bigint      CHECK (collected >= 0 AND collected <= fee),
    status       text        NOT NULL CHECK (status IN ('posting', 'charged', 'due')),
    transfer_id  uuid        NOT NULL,
    tried_on     date        NOT NULL,  -- the business date whose close last asked the ledger
    charged_on   date,
    error        text,
    PRIMARY KEY (account_id, kind, month_end)
);
CREATE INDEX account_charge_unsettled ON account_charge (tried_on) WHERE status IN ('posting', 'due');
CREATE UNIQUE INDEX account_charge_by_transfer ON account_charge (transfer_id);

-- Close of business's `account.charges` step, one row per business date: the cursor through the
-- fee-bearing accounts (charging), the charges earlier closes could not take (retrying), done.
CREATE TABLE charge_run (
    business_date  date        PRIMARY KEY,
    covers_until   date        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('charging', 'retrying', 'done')),
    cursor         uuid,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
