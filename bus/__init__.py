"""The plumbing every CBS process shares: settings, topology, broker, inbox, outbox, migrations."""
