"""Account rules (banking-rules §2), pure: no I/O, no clock, no id generation.

`accounts`: products, numbers, eligibility, the status machine and the checks made before asking
the ledger. `interest`: savings interest, accrued exactly each day and rounded once when posted.
"""
