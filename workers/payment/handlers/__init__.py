"""The payment worker's handlers, one module per noun: `orders` (placing a payment), `lifecycle`
(asking the ledger, its answers, finishing a payment: what every handler shares), `approvals`
(maker-checker), `refunds`, `clearing` (the clearing partner's answers and incoming credits),
`reads` (reads and payees), `standing_orders`, `accounts` (the account worker's facts) and
`duties` (the sweep and the standing-order scheduler). `routes.py` names which answers what."""
