-- The ledger worker's runtime role (cbs_ledger), widened after the runner's defaults
-- (bus/migrate.py: SELECT, INSERT, UPDATE on every table of the schema, no DELETE). Run as the
-- owner role on every `cbs migrate`.
--
-- Close of business's day-end balances are taken once per close of a date; a new close of the
-- same date (a bank set back to it) takes them anew, so the old cut's rows go
-- (workers/ledger/store.py keep_day_end_balances). Nothing else of the ledger is ever deleted.
GRANT DELETE ON day_end, day_end_balance TO cbs_ledger;
