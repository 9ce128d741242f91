# The two commands of the README: `make run` and `make test`.
.PHONY: run test test-cluster test-second-server prepare migrate lint

prepare:
	@scripts/prepare.sh

migrate: prepare
	.venv/bin/cbs migrate

run: migrate
	.venv/bin/cbs up

lint: prepare
	.venv/bin/lint-imports

test: lint
	.venv/bin/python -m pytest

# The ledger's schema on a PostgreSQL server of the run's own (tests/pg_server.py): migrations,
# the worker and its integration tests there unchanged (README, "Running it in production").
test-second-server: lint
	CBS_TEST_SECOND_SERVER=ledger .venv/bin/python -m pytest tests/integration/test_second_server.py tests/integration/test_ledger_bus.py

# Only the tests on a private three-node RabbitMQ cluster (tests/cluster, ~2 min; `make test` runs them too).
test-cluster: lint
	.venv/bin/python -m pytest -m cluster tests/cluster
