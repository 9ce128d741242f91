-- Late fees (banking-rules §5 "Repayment": allocation penalty → charges → interest → principal): a
-- product's late fee is charged once on an instalment still owing after its grace days, and
-- booked to fee income when paid, as a penalty is.
ALTER TABLE instalment
    ADD COLUMN charges_due  bigint NOT NULL DEFAULT 0,
    ADD COLUMN charges_paid bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT instalment_charges_check CHECK (charges_due >= 0 AND charges_paid >= 0 AND charges_paid <= charges_due);
