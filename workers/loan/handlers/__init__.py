"""The loan worker's handlers, by what they serve: each reads what it needs, asks the pure domain,
writes, answers."""
