-- The money. Balances are changed only by the ledger worker's group commit, under row locks
-- taken in id order; the CHECKs below hold the invariants even against a bug in the code.

CREATE TABLE ledger_account (
    id                             uuid        PRIMARY KEY,
    currency                       char(3)     NOT NULL,
    code                           text        NOT NULL,
    debits_must_not_exceed_credits boolean     NOT NULL DEFAULT false,
    credits_must_not_exceed_debits boolean     NOT NULL DEFAULT false,
    history                        boolean     NOT NULL DEFAULT false,
    frozen                         boolean     NOT NULL DEFAULT false,
    closed                         boolean     NOT NULL DEFAULT false,
    overdraft_limit                bigint      NOT NULL DEFAULT 0,
    owner_id                       uuid,
    user_data                      jsonb,
    debits_pending                 bigint      NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted                  bigint      NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending                bigint      NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted                 bigint      NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at                     timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    -- A negative limit is a minimum balance: a new, empty account sits below it legally (only
    -- debits are refused), so the invariant a row can always keep is "never past the overdraft".
    -- numeric: the sums of two bigints may not fit in a bigint.
    CHECK (NOT debits_must_not_exceed_credits
           OR debits_posted::numeric + debits_pending <= credits_posted::numeric + greatest(overdraft_limit, 0)),
    CHECK (NOT credits_must_not_exceed_debits
           OR credits_posted::numeric + credits_pending <= debits_posted::numeric + greatest(overdraft_limit, 0))
);

CREATE TABLE transfer (
    seq               bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                uuid        PRIMARY KEY,
    debit_account_id  uuid        NOT NULL REFERENCES ledger_account (id),
    credit_account_id uuid        NOT NULL REFERENCES ledger_account (id),
    amount            bigint      NOT NULL CHECK (amount >= 0),
    requested_amount  bigint      NOT NULL CHECK (requested_amount >= 0),
    currency          char(3)     NOT NULL,
    code              text        NOT NULL,
    flags             smallint    NOT NULL,
    pending_id        uuid,
    timeout_s         integer     NOT NULL DEFAULT 0,
    reference         text,
    user_data         jsonb,
    ts                timestamptz NOT NULL,
    expires_at        timestamptz,
    state             text        NOT NULL
        CHECK (state IN ('posted', 'pending', 'pending_posted', 'pending_voided', 'pending_expired', 'voided')),
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfer_pending_expiry ON transfer (expires_at) WHERE state = 'pending' AND expires_at IS NOT NULL;

-- An id that failed stays failed (`id_already_failed`): a retry needs a new id.
CREATE TABLE transfer_failed (
    id     uuid        PRIMARY KEY,
    result text        NOT NULL,
    ts     timestamptz NOT NULL DEFAULT now()
);

-- One row per account per transfer that touched it, with the balances after: history and
-- "balance as of" are reads of this table. seq orders it (taken under the account's lock).
CREATE TABLE account_history (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid        NOT NULL,
    transfer_id     uuid        NOT NULL,
    ts              timestamptz NOT NULL,
    code            text        NOT NULL,
    amount          bigint      NOT NULL,
    side            text        NOT NULL CHECK (side IN ('debit', 'credit')),
    pending         boolean     NOT NULL,
    debits_pending  bigint      NOT NULL,
    debits_posted   bigint      NOT NULL,
    credits_pending bigint      NOT NULL,
    credits_posted  bigint      NOT NULL
);
CREATE INDEX account_history_by_account ON account_history (account_id, seq);
CREATE INDEX account_history_by_time ON account_history (account_id, ts);
