-- Restructuring (workers/loan/domain/restructure.py): the loan while the ledger capitalises its
-- interest; old instalments closed as restructured; each instalment keeps the principal left after
-- it (a loan's instalments may now come from more than one schedule).
ALTER TABLE loan DROP CONSTRAINT loan_status_check;
ALTER TABLE loan ADD CONSTRAINT loan_status_check
    CHECK (status IN ('disbursing', 'refused', 'active', 'overdue', 'defaulted', 'closing', 'closed', 'writing_off',
                      'written_off', 'restructuring'));
ALTER TABLE instalment DROP CONSTRAINT instalment_status_check;
ALTER TABLE instalment ADD CONSTRAINT instalment_status_check
    CHECK (status IN ('pending', 'asked', 'paying', 'paid', 'partially_paid', 'foreclosed', 'written_off', 'restructured'));
ALTER TABLE instalment ADD COLUMN balance_after bigint;
UPDATE instalment i SET balance_after = (x->>'balance_after')::bigint
  FROM loan l, jsonb_array_elements(l.view->'schedule'->'instalments') AS x
 WHERE l.loan_id = i.loan_id AND (x->>'number')::int = i.number;
