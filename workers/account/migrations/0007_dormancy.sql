-- Dormancy (banking-rules §2): the last customer-initiated activity (own deposit, withdrawal,
-- payment out, learnt from payment.completed; opening and reactivation count too). Close of
-- business's `account.dormancy` step turns an active account dormant a year after it.
ALTER TABLE account ADD COLUMN last_customer_activity_at timestamptz;
UPDATE account SET last_customer_activity_at = opened_at;
ALTER TABLE account ALTER COLUMN last_customer_activity_at SET NOT NULL;
CREATE INDEX account_dormancy_due ON account (last_customer_activity_at) WHERE status = 'active';
