# The two commands of the README: `make run` and `make test`.
.PHONY: run test prepare migrate lint

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
