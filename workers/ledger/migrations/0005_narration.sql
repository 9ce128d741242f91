-- Readable lines (issue 11): what a movement is and who is on its other side, as history and
-- statements show them. All optional and never part of a transfer's identity: a retry with other
-- text answers `exists` and keeps the first. A post or void without its own keeps its hold's.
ALTER TABLE transfer ADD COLUMN narration text, ADD COLUMN counterparty text;
-- How statements name an account to the other side of a transfer (an account number).
ALTER TABLE ledger_account ADD COLUMN title text;
-- A history line's business date: that of the first books taken after it (history reads it).
CREATE INDEX trial_balance_by_taken_at ON trial_balance (taken_at);
