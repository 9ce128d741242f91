"""Load generators for `cbs bench`: registrations, ledger transfers, payment orders."""
