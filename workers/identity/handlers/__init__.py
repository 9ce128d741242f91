"""The identity worker's recipes (load, decide (domain), store, reply), one module per noun:
`users`, `tokens` (the grants of `identity.issue_token`, and logout), `revocations` (access that
ended, recorded and told), `api_keys`, `signing_keys` (and start-up: a signing key and the first
admin) and `otp` (step-up one-time passwords). `users` holds `refuse` and `no_user`, which the
others answer too. `routes.py` names which answers what.

Password hashing runs in a thread: argon2 is ~50 ms of CPU, and the event loop must keep
serving heartbeats and other messages meanwhile.
"""
