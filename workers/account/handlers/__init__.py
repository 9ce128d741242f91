"""The account worker's handlers, one module per noun: `accounts` (opening, reads, the lifecycle,
holds, and what the customer worker tells), `products` (defined and versioned as data), `interest` (close of business's `account.interest`
step and the interest reads). `routes.py` names which answers what."""
