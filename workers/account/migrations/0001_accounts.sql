-- What the account worker knows of each customer, from customer.* events (never asked live).
CREATE TABLE customer_standing (
    customer_id  uuid        PRIMARY KEY,
    status       text        NOT NULL,
    kyc_status   text        NOT NULL,
    -- occurred_at of the newest event applied: an older event arriving late changes nothing.
    as_of        timestamptz NOT NULL
);

-- Per-branch account number sequence; the row lock serialises numbering within a branch.
CREATE TABLE branch_sequence (
    branch    char(3) PRIMARY KEY,
    last_used bigint  NOT NULL CHECK (last_used BETWEEN 1 AND 99999999)
);

CREATE TABLE account (
    account_id           uuid        PRIMARY KEY,
    number               text        NOT NULL UNIQUE,
    customer_id          uuid        NOT NULL,
    product_code         text        NOT NULL,
    type                 text        NOT NULL CHECK (type IN ('savings', 'current')),
    currency             char(3)     NOT NULL,
    status               text        NOT NULL CHECK (status IN ('active', 'dormant', 'frozen', 'closed', 'inactive')),
    status_before_freeze text        CHECK (status_before_freeze IN ('active', 'dormant')),
    ledger_account_id    uuid        NOT NULL,
    branch               char(3)     NOT NULL,
    nickname             text,
    opened_at            timestamptz NOT NULL,
    closed_at            timestamptz,
    version              integer     NOT NULL DEFAULT 1,
    CHECK ((status = 'frozen') = (status_before_freeze IS NOT NULL)),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX account_by_customer ON account (customer_id, opened_at, account_id);
