"""The audit worker's handlers.

- `taps`: every command and event made into a draft record, and the `Recorder` that commits them
  in batches (raw subscribers, wired in app.py);
- `records`: the append of a batch to the hash chain, and audit's commands `audit.list_records`
  and `audit.verify_chain`;
- `retention`: the duty that archives expired records.
"""
