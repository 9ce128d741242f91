"""The account worker's handlers, one module per noun: `accounts` (opening, reads, the lifecycle,
holds, overdrafts, and what the customer worker tells), `products` (defined and versioned as
data), `dormancy`, and close of business (`cob` runs the worker's steps: `interest`, `charges`,
`dormancy`, `statements`, each with its reads). `routes.py` names which answers what."""
