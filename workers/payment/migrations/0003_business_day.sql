-- The business date and the holidays, as the day worker published them (`day.opened`,
-- `day.holidays_changed`): the scheduler's "today" and calendar. Each fact is kept only if it is
-- newer (`as_of`, its occurred_at) than what is stored: replicas may learn them out of order.
CREATE TABLE business_day (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    business_date  date        NOT NULL,
    as_of          timestamptz NOT NULL
);

CREATE TABLE holiday (
    holiday_date  date        PRIMARY KEY,
    name          text,                      -- NULL: no longer a holiday
    as_of         timestamptz NOT NULL
);
