-- The bank's own ledger accounts, one set per currency (banking-rules §3). Their ids are
-- derived from code and currency (md5 → uuid), so every worker can name them without asking:
-- workers/ledger/domain.py `bank_account_id` computes the same id.
CREATE FUNCTION ensure_bank_accounts(cur char(3)) RETURNS integer
LANGUAGE sql AS $$
    WITH created AS (
        INSERT INTO ledger_account (id, currency, code)
        SELECT md5('cbs.ledger.' || code || '.' || cur)::uuid, cur, code
          FROM unnest(ARRAY[
              'cash_vault', 'clearing_internal', 'clearing_neft', 'clearing_rtgs', 'clearing_imps', 'clearing_upi',
              'hold_control', 'loan_principal', 'loan_interest_receivable', 'interest_income', 'interest_expense',
              'fee_income', 'penalty_income', 'interest_suspense', 'suspense'
          ]) AS code
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM created
$$;

SELECT ensure_bank_accounts('INR');
