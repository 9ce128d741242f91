"""What every running CBS process imports: settings, topology, broker, the worker runtime (inbox,
outbox, sagas, group commit), the edge's correlator, migrations. The operator's tools are `ops/`."""
