"""Ledger rules (DESIGN §5, banking-rules §3), pure: no I/O, the clock comes in as an argument.

The store loads state, these modules decide and change it in memory, the store writes it back.
`accounts`: an account's state, balances, views, creation and flags, and the verification rule.
`transfers`: the transfer engine (TigerBeetle's create_transfers) and expiry of holds.
"""
