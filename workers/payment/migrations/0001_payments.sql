-- The payment worker's own data (banking-rules §4). Money is bigint minor units.

-- What the payment worker knows of each account, from account.* events (never asked live).
CREATE TABLE payment_account (
    account_id                  uuid        PRIMARY KEY,
    customer_id                 uuid        NOT NULL,
    number                      text        NOT NULL UNIQUE,
    product_code                text        NOT NULL,
    currency                    char(3)     NOT NULL,
    status                      text        NOT NULL,
    daily_payments_out_limit    bigint      CHECK (daily_payments_out_limit >= 0),
    monthly_debit_limit         bigint      CHECK (monthly_debit_limit >= 0),
    daily_cash_withdrawal_limit bigint      CHECK (daily_cash_withdrawal_limit >= 0),
    -- occurred_at of the newest event applied: an older event arriving late changes nothing.
    as_of                       timestamptz NOT NULL
);

-- What each account has used of its limits, per period (bank date of the period's first day).
-- The payer account's row above is locked while a payment is admitted, so two concurrent
-- orders that each fit but together exceed a limit cannot both pass.
CREATE TABLE limit_usage (
    account_id   uuid   NOT NULL,
    period       text   NOT NULL CHECK (period IN ('day', 'month', 'cash_day', 'upi_day')),
    period_start date   NOT NULL,
    used         bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (account_id, period, period_start)
);

CREATE TABLE payment (
    payment_id        uuid        PRIMARY KEY,
    reference         text        NOT NULL UNIQUE,
    kind              text        NOT NULL,
    channel           text        NOT NULL,
    status            text        NOT NULL CHECK (status IN
                          ('initiated', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'refunded')),
    payer_account_id  uuid,
    payee             jsonb,
    -- The CBS account credited, when there is one (internal, cash deposit, refund, incoming).
    payee_account_id  uuid,
    payee_id          uuid,
    customer_id       uuid,
    amount            bigint      NOT NULL CHECK (amount > 0),
    fee               bigint      NOT NULL CHECK (fee >= 0),
    currency          char(3)     NOT NULL,
    fraud_score       integer     NOT NULL CHECK (fraud_score BETWEEN 0 AND 100),
    fraud_level       text        NOT NULL,
    needs_approval    boolean     NOT NULL DEFAULT false,
    -- Which limits this payment charged (so failure and cancellation give back exactly that).
    charged_periods   text[]      NOT NULL DEFAULT '{}',
    refund_of         uuid        REFERENCES payment (payment_id),
    -- Completed refunds, and refunds completed or still in flight (what a new refund may use).
    refunded_amount   bigint      NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    refund_reserved   bigint      NOT NULL DEFAULT 0 CHECK (refund_reserved >= refunded_amount),
    maker             text        NOT NULL,
    approver          text,
    partner           text,
    partner_reference text,
    failure_code      text,
    failure_reason    text,
    description       text,
    standing_order_id uuid,
    execute_at        timestamptz,
    -- Approval expiry while pending approval; settlement timeout while processing.
    expires_at        timestamptz,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK (refund_reserved <= amount)
);
CREATE INDEX payment_payer_newest ON payment (payer_account_id, created_at DESC, payment_id DESC);
CREATE INDEX payment_payee_newest ON payment (payee_account_id, created_at DESC, payment_id DESC);
CREATE INDEX payment_due ON payment (status, execute_at) WHERE status IN ('pending', 'processing');
CREATE INDEX payment_expiring ON payment (status, expires_at) WHERE expires_at IS NOT NULL;
-- An incoming credit is credited once per partner reference.
CREATE UNIQUE INDEX payment_partner_reference ON payment (partner, partner_reference) WHERE kind = 'incoming';

CREATE TABLE payee (
    payee_id    uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL,
    payee       jsonb       NOT NULL,
    added_at    timestamptz NOT NULL
);
CREATE INDEX payee_of_customer ON payee (customer_id, added_at DESC);

CREATE TABLE standing_order (
    standing_order_id uuid        PRIMARY KEY,
    payer_account_id  uuid        NOT NULL,
    customer_id       uuid        NOT NULL,
    payee             jsonb       NOT NULL,
    kind              text        NOT NULL,
    amount            bigint      NOT NULL CHECK (amount > 0),
    currency          char(3)     NOT NULL,
    frequency         text        NOT NULL CHECK (frequency IN ('weekly', 'monthly', 'quarterly')),
    start_date        date        NOT NULL,
    end_date          date,
    -- The next occurrence's nominal date and the business day it is due (null once ended),
    -- and a retry owed after a failure.
    next_nominal      date,
    next_due          date,
    retry_nominal     date,
    retry_on          date,
    failures          integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    status            text        NOT NULL CHECK (status IN ('active', 'suspended', 'cancelled', 'ended')),
    actor             text        NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX standing_order_of_account ON standing_order (payer_account_id, created_at DESC);
CREATE INDEX standing_order_due ON standing_order (least(next_due, retry_on)) WHERE status = 'active';

-- Every occurrence a standing order placed: its payment id is derived from the order, the
-- nominal date and the attempt, so however many scheduler replicas run, each is placed once.
CREATE TABLE standing_order_occurrence (
    payment_id        uuid    PRIMARY KEY,
    standing_order_id uuid    NOT NULL REFERENCES standing_order (standing_order_id),
    nominal           date    NOT NULL,
    attempt           integer NOT NULL CHECK (attempt IN (1, 2)),
    placed_on         date    NOT NULL,
    -- null while in flight; true/false once the payment completed or failed.
    succeeded         boolean,
    UNIQUE (standing_order_id, nominal, attempt)
);
