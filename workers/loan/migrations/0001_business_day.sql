-- The loan worker's own data (banking-rules §5). Money is bigint minor units.

-- The business date, as the day worker publishes it (day.opened): a schedule's due dates count
-- from it; the loan's daily work will run on it, never on the wall clock.
CREATE TABLE business_day (
    id             boolean     PRIMARY KEY DEFAULT true CHECK (id),
    business_date  date        NOT NULL,
    as_of          timestamptz NOT NULL
);
