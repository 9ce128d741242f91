"""Customer rules (banking-rules §1), pure: no I/O. The business date (`today`), the clock (`now`)
and the bank's settings come in as arguments.

- `kyc`: the status, KYC and document machines, document validity dates, ages, the documents
  each customer type requires and what still blocks KYC completion;
- `profile`: risk scoring, phone and email validation, addresses and contacts (one primary),
  the profile check, full name and summary; `Refusal`, what every rule refusing answers;
- `decisions`: every `decide_*` and `expiry_notices`. A `decide_*` function answers a `Change`
  (the customer as it should be stored, with its version bumped, and the events for the outbox)
  or a `Refusal`; it never raises for a business reason.
"""
