"""The operator's tools: the `cbs` command (`cli.py`), its supervisor, dead letters, partner and
broker-user administration, the offline check of audit's archive (`audit_archive.py`), `ask.py`
(one command, one reply), `bench/` (load generators) and `sim/` (simulated partners).

Nothing that runs in the cluster imports this package (an import-linter contract keeps it so):
a worker or the edge needs only `bus/`.
"""
