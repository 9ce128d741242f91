-- Penalties (banking-rules §5): accrued day by day at each close on what an instalment owes past its
-- due date, booked in the ledger only when paid; waived when it is paid within the grace days.
ALTER TABLE instalment ADD COLUMN penalty_due bigint NOT NULL DEFAULT 0 CHECK (penalty_due >= 0),
                       ADD COLUMN penalty_paid bigint NOT NULL DEFAULT 0 CHECK (penalty_paid >= 0),
                       ADD COLUMN penalty_through date,  -- the last calendar day accrued
                       ADD CONSTRAINT instalment_penalty_paid CHECK (penalty_paid <= penalty_due);
