"""The notification worker's recipes, by noun: `triggers` (events → notifications), `commands`
(preferences, inbox, templates, endpoints, one-off messages), `sending` (the sender loop),
`channels` (SMTP, SMS providers, webhooks) and `config` (its environment)."""
