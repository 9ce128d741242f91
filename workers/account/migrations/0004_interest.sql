-- Savings interest (banking-rules §2; workers/account/domain/interest.py): one row per account and
-- posting period. `balance_bps_days` is Σ day-end balance × rate_bps over the days accrued: the
-- exact interest is it / 3,650,000 minor units, rounded once when the period posts.
CREATE TABLE interest_accrual (
    account_id        uuid        NOT NULL REFERENCES account (account_id),
    period_end        date        NOT NULL,
    accrued_from      date        NOT NULL,
    accrued_through   date        NOT NULL,
    balance_bps_days  numeric(40) NOT NULL CHECK (balance_bps_days >= 0),
    status            text        NOT NULL DEFAULT 'accruing'
        CHECK (status IN ('accruing', 'posting', 'posted', 'due')),
    amount            bigint      CHECK (amount >= 0),  -- rounded, once asked of the ledger
    transfer_id       uuid,
    tried_on          date,  -- the business date whose close last asked the ledger to post it
    posted_on         date,
    error             text,
    PRIMARY KEY (account_id, period_end),
    CHECK (accrued_from <= accrued_through AND accrued_through <= period_end)
);
-- The close's posting round: periods ended, not posted, not tried by this close yet.
CREATE INDEX interest_accrual_unposted ON interest_accrual (period_end) WHERE status IN ('accruing', 'due', 'posting');

-- Close of business's `account.interest` step, one row per business date: where the paging of the
-- ledger's day-end balances stands, then the posting, then done (what it did, for the report).
CREATE TABLE interest_run (
    business_date  date        PRIMARY KEY,
    covers_until   date        NOT NULL,  -- the next business date: the close accrues the days before it
    status         text        NOT NULL CHECK (status IN ('accruing', 'posting', 'done')),
    cursor         uuid,  -- the last account id accrued; the next page starts after it
    accounts       integer     NOT NULL DEFAULT 0,
    postings       integer     NOT NULL DEFAULT 0,
    posted_minor   numeric(40) NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
