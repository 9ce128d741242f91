-- The bank's one business date (a single row), the steps of each close of business, the days
-- closed with their trial balance, and the holidays (banking-rules §0; contracts/day.py).
CREATE TABLE business_day (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    business_date  date        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('open', 'closing')),
    last_closed    date,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per (date, step): idempotent, and what `cbs day status` shows.
CREATE TABLE cob_step (
    business_date  date        NOT NULL,
    step           text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    error          text,
    result         jsonb,
    attempts       integer     NOT NULL DEFAULT 0,
    asked_at       timestamptz,
    reported_at    timestamptz,
    PRIMARY KEY (business_date, step)
);

CREATE TABLE closed_day (
    business_date       date        PRIMARY KEY,
    next_business_date  date        NOT NULL,
    trial_balance       jsonb       NOT NULL,
    closed_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The runtime role may not DELETE: a removed holiday keeps its row, marked.
CREATE TABLE holiday (
    holiday_date  date        PRIMARY KEY,
    name          text        NOT NULL,
    added_by      text        NOT NULL,
    removed_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
