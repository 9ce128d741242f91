-- Monthly statements (banking-rules §2): one per account and month, drawn up by close of
-- business's `account.statements` step from the ledger's history; withheld when opening + credits
-- − debits ≠ closing.
CREATE TABLE statement (
    account_id    uuid        NOT NULL REFERENCES account (account_id),
    month_end     date        NOT NULL,
    opening       bigint      NOT NULL,
    credits       bigint      NOT NULL CHECK (credits >= 0),
    debits        bigint      NOT NULL CHECK (debits >= 0),
    closing       bigint      NOT NULL,
    transfers     integer     NOT NULL CHECK (transfers >= 0),
    period_from   timestamptz,
    period_until  timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('issued', 'withheld')),
    issued_on     date        NOT NULL,
    PRIMARY KEY (account_id, month_end),
    CHECK ((status = 'issued') = (opening + credits - debits = closing))
);

-- Close of business's `account.statements` step, one row per business date: the month being drawn
-- up (a close may end more than one) and the cursor through the accounts.
CREATE TABLE statement_run (
    business_date  date        PRIMARY KEY,
    month_end      date,
    cursor         uuid,
    status         text        NOT NULL CHECK (status IN ('drawing', 'done')),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
