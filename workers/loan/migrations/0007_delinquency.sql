-- Delinquency (banking-rules §5): days past due, bucket, overdue and defaulted, found at each close.
ALTER TABLE loan DROP CONSTRAINT loan_status_check;
ALTER TABLE loan ADD CONSTRAINT loan_status_check
    CHECK (status IN ('disbursing', 'refused', 'active', 'overdue', 'defaulted'));
