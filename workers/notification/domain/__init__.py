"""The notification worker's decisions, pure (banking-rules §6): who gets what on which channel
(`rules`), what it says (`templates`), and how sending goes on (`delivery`)."""
