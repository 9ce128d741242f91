-- Holds and liens on an account (banking-rules §2): each is a pending transfer in the ledger
-- (id = hold_id, from the account to the bank's hold_control), so available falls by it at once
-- and the account cannot close while it stands. This table is the account's view of them.
CREATE TABLE account_hold (
    hold_id      uuid        PRIMARY KEY,
    account_id   uuid        NOT NULL REFERENCES account (account_id),
    kind         text        NOT NULL CHECK (kind IN ('hold', 'lien')),
    amount       bigint      NOT NULL CHECK (amount > 0),
    currency     char(3)     NOT NULL,
    reason       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('placing', 'active', 'released', 'expired', 'refused')),
    placed_by    text        NOT NULL,
    placed_at    timestamptz NOT NULL,
    expires_in_s integer,
    expires_at   timestamptz,
    released_at  timestamptz,
    refusal      text
);
CREATE INDEX account_hold_by_account ON account_hold (account_id, placed_at DESC);
