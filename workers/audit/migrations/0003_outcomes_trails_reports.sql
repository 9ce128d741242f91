-- From a record of everything to answers (issue 13): outcomes, account trails, reports,
-- investigations.
--
-- The hash chain (audit_record) stays the evidence and stays append-only. A command's outcome
-- (its reply, read from the `audit.tap.replies` stream) is appended to the chain as a record of
-- its own, kind `outcome`, event_id `<command message_id>.reply`, causation_id the command's
-- message_id: the command's record is never changed, and the outcome is as tamper-evident as
-- the command. The tables below are indexes derived from chained records, written in the same
-- transaction as the records they come from; each row names the `seq` it was read from, so a
-- report can be checked against the chain, and all of them could be rebuilt from it.

ALTER TABLE audit_record DROP CONSTRAINT audit_record_kind_check;
ALTER TABLE audit_record ADD CONSTRAINT audit_record_kind_check CHECK (kind IN ('command', 'event', 'outcome'));

-- A command's outcome, by the command's message_id: the first outcome recorded wins (a reply
-- is recorded once per message_id anyway).
CREATE TABLE audit_outcome (
    command_id    text        PRIMARY KEY,      -- the command's message_id (its record's event_id)
    command_key   text        NOT NULL,         -- the routing key of the command it answers
    result        text        NOT NULL CHECK (result IN ('success', 'refused', 'failed', 'partial')),
    status        text        NOT NULL,         -- banking-rules §7 status: success, failure, partial
    code          text,                         -- the refusal code (or the most frequent item code)
    outcome_seq   bigint      NOT NULL UNIQUE,  -- the chained outcome record
    recorded_at   timestamptz NOT NULL
);
CREATE INDEX audit_outcome_refused ON audit_outcome (recorded_at) WHERE result <> 'success';

-- One actor's activity: the person the edge authenticated, else the service's or partner's broker user.
CREATE INDEX audit_record_actor_or_user ON audit_record ((coalesce(actor, broker_user)), seq);

-- Every account a record mentions (payer, payee, debit, credit, the account acted on), so an
-- account's trail finds the payments and ledger transfers that moved its money.
CREATE TABLE audit_record_account (
    account_id  uuid    NOT NULL,
    seq         bigint  NOT NULL,
    PRIMARY KEY (account_id, seq)
);

-- The bank's business date as audit last learnt it (`day.opened` on the events tap).
CREATE TABLE audit_business_day (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    business_date  date    NOT NULL,
    learnt_seq     bigint  NOT NULL
);

-- Money movements for the reports: each completed payment order, once.
CREATE TABLE audit_movement (
    payment_id        uuid        PRIMARY KEY,
    seq               bigint      NOT NULL UNIQUE,  -- the `payment.completed` record
    business_date     date        NOT NULL,
    customer_id       uuid,
    kind              text        NOT NULL,
    payer_account_id  uuid,
    payee_account_id  uuid,
    amount            bigint      NOT NULL CHECK (amount >= 0),
    currency          text        NOT NULL,
    occurred_at       timestamptz NOT NULL
);
CREATE INDEX audit_movement_day ON audit_movement (business_date, amount);
CREATE INDEX audit_movement_customer ON audit_movement (business_date, customer_id);

-- The investigation of each security or compliance follow-up audit raised. Every change is a
-- command to audit (`audit.assign_investigation`, `audit.note_investigation`,
-- `audit.close_investigation`), so it is itself in the chain, with its outcome.
CREATE TABLE audit_investigation (
    record_seq   bigint      NOT NULL,  -- the record that raised the follow-up
    kind         text        NOT NULL CHECK (kind IN ('security', 'compliance')),
    routing_key  text        NOT NULL,  -- of the record that raised it
    actor        text,
    risk_score   integer     NOT NULL,
    status       text        NOT NULL CHECK (status IN ('open', 'assigned', 'closed')),
    assignee     text,
    notes        jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [{at, by, text}], appended
    resolution   text,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    closed_at    timestamptz,
    PRIMARY KEY (record_seq, kind)
);
CREATE INDEX audit_investigation_open ON audit_investigation (status, opened_at);
