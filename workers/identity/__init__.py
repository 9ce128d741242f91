"""The identity worker: logins, roles and permissions, tokens, API keys and signing keys."""
