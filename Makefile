# The two commands of the README: `make run` and `make test`.
.PHONY: run test test-cluster prepare migrate lint

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

# Only the tests on a private three-node RabbitMQ cluster (tests/cluster, ~2 min; `make test` runs them too).
test-cluster: lint
	.venv/bin/python -m pytest -m cluster tests/cluster
