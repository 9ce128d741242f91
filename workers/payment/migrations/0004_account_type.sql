-- The kind of each account (from account.opened): a term deposit takes no payments in or out.
ALTER TABLE payment_account ADD COLUMN type text;
