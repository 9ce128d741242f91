-- ATM withdrawals beyond the product's free ones a month pay its ATM fee (banking-rules §2).
-- The terms come with account.opened and account.product_migrated; null: not known (no fee).
ALTER TABLE payment_account ADD COLUMN free_atm_withdrawals integer CHECK (free_atm_withdrawals >= 0),
                            ADD COLUMN atm_fee bigint CHECK (atm_fee >= 0);
-- `atm_month` counts ATM withdrawals (not money) in a calendar month, bank time.
ALTER TABLE limit_usage DROP CONSTRAINT limit_usage_period_check;
ALTER TABLE limit_usage ADD CONSTRAINT limit_usage_period_check
    CHECK (period IN ('day', 'month', 'cash_day', 'upi_day', 'atm_month'));
