"""The ledger's recipes, one module per noun: `transfers` (`create_transfers`, group-committed,
and the expiry sweep), `commits` (what one commit loads, writes and tells: shared by transfers
and an account's closing), `accounts` (created, flagged, closed with a payout, their overdraft
limit; the bank's own at start), `reads` (accounts, transfers, history, balances, `verify`) and
`cob` (close of business: the ledger's steps, and the reads of what they kept). `routes.py` names
which answers what."""
