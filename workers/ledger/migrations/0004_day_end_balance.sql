-- Close of business's `ledger.day_end_balances` step: each open customer deposit account's posted
-- balance as the business date ended, taken once per date (the cut interest accrues on; taken
-- again it would see the interest and payments of later). Zero balances are left out.
CREATE TABLE day_end (
    business_date  date        PRIMARY KEY,
    accounts       integer     NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE day_end_balance (
    business_date  date    NOT NULL REFERENCES day_end,
    account_id     uuid    NOT NULL,
    balance        bigint  NOT NULL,
    PRIMARY KEY (business_date, account_id)
);
