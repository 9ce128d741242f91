"""The audit worker's handlers.

- `taps`: every command, event and reply made into a draft record (a reply into its command's
  outcome);
- `records`: the append of a batch to the hash chain (and the indexes beside it: outcomes,
  accounts named, business date, completed payments, investigations), and audit's commands
  `audit.list_records` and `audit.verify_chain`;
- `reports`: `audit.get_report` (large-value, structuring, security-summary, actor-activity);
- `investigations`: the workflow of security and compliance follow-ups (assign, note, close);
- `retention`: the duty that archives expired records.
"""
