"""Audit's rules (banking-rules §7), pure: no I/O, no clock, no random, nothing of the bus.

- `classification`: what a record is (type, severity, status, retention, compliance flags, risk
  score, follow-ups) and the decisions the rules leave open;
- `subjects`: what a record is about and who asked;
- `chain`: canonical JSON and the SHA-256 hash chain that makes the trail append-only;
- `outcomes`: how a command ended, from its reply;
- `reports`: the reports' rules (large value, structuring, security summary).
"""
