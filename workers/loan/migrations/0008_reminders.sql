-- loan.instalment_due, 3 days before (banking-rules §5): told once, by the close that first comes within them.
ALTER TABLE instalment ADD COLUMN reminded_on date;
CREATE INDEX instalment_to_remind ON instalment (due_date) WHERE reminded_on IS NULL AND status = 'pending';
