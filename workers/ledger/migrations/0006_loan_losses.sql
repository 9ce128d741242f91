-- Loans written off and what is recovered of them afterwards (issue 12): two more of the bank's own
-- accounts in every currency. The function is redefined with the whole list (the newest migration
-- holds it: tests/unit/test_contracts.py compares it with contracts.ledger.BANK_ACCOUNT_CODES), and
-- called again for every currency already in use, so an existing ledger gains them too.
CREATE OR REPLACE FUNCTION ensure_bank_accounts(cur char(3)) RETURNS integer
LANGUAGE sql AS $$
    WITH created AS (
        INSERT INTO ledger_account (id, currency, code)
        SELECT md5('cbs.ledger.' || code || '.' || cur)::uuid, cur, code
          FROM unnest(ARRAY[
              'cash_vault', 'clearing_internal', 'clearing_neft', 'clearing_rtgs', 'clearing_imps', 'clearing_upi',
              'hold_control', 'loan_principal', 'loan_interest_receivable', 'interest_income', 'interest_expense',
              'fee_income', 'penalty_income', 'interest_suspense', 'suspense', 'loan_write_off', 'loan_recovery_income'
          ]) AS code
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer FROM created
$$;

SELECT ensure_bank_accounts(currency) FROM (SELECT DISTINCT currency FROM ledger_account WHERE code = 'cash_vault') AS c;
