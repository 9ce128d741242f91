"""The payment worker's rules, pure (DESIGN: the domain decides and never acts): `orders` (formats,
rails, fees, limits, maker-checker, the status machine, refunds), `screening` (fraud score, watch
list), `transfers` (what a payment asks of the ledger), `schedule` (standing orders' dates)."""
