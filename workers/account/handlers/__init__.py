"""The account worker's handlers, one module per noun: `accounts` (opening, reads, overdrafts and
product migration, and what the customer worker tells), `lifecycle` (freeze, unfreeze, close with
payout, a customer who leaves), `holds` (holds and liens), `products` (defined and versioned as
data), `dormancy`, and close of business (`cob` runs the worker's steps: `interest`, `charges`,
`dormancy`, `statements`, each with its reads). `routes.py` names which answers what."""
