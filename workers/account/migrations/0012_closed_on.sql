-- The business date an account closed on (banking-rules §2: opened/closed dates): the statements
-- step draws up the last statement of an account closed in the month (closed_at is wall-clock time,
-- never a banking decision's). Null for accounts closed before it was kept, or before any date was known.
ALTER TABLE account ADD COLUMN closed_on date;
