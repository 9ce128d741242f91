-- Overdraft interest (banking-rules §2: overdraft charges are product settings): a current
-- account's debit interest on its overdrawn day-end balances, charged monthly with the fees.
-- Σ max(−balance, 0) × days per month, kept by the same pass as balance_days.
ALTER TABLE balance_month ADD COLUMN overdrawn_days numeric(40) NOT NULL DEFAULT 0 CHECK (overdrawn_days >= 0);
ALTER TABLE account_charge DROP CONSTRAINT account_charge_kind_check;
ALTER TABLE account_charge ADD CONSTRAINT account_charge_kind_check
    CHECK (kind IN ('maintenance', 'shortfall', 'overdraft_interest'));
