# LiftLedger: `make demo` runs the platform on a simulated fleet, `make test` runs every check.
# Both install what is missing (Python environment, PostgreSQL + TimescaleDB, Mosquitto,
# Anvil) and are safe to run again.

LIFTLEDGER := .venv/bin/liftledger
PYTEST_ARGS ?=

.PHONY: help venv stack-up stack-down stack-status migrate demo lint test clean-data

help:
	@echo "make demo    bring the stack up with the sample sub-district and print where to look"
	@echo "make test    install what is missing, start the stack, run lint, types and tests"
	@echo "make stack-down   stop the local services"

venv:
	@scripts/bootstrap.sh

stack-up: venv
	@$(LIFTLEDGER) stack up

stack-down: venv
	@$(LIFTLEDGER) stack down

stack-status: venv
	@$(LIFTLEDGER) stack status

migrate: stack-up
	@$(LIFTLEDGER) db upgrade

demo: venv
	@$(LIFTLEDGER) demo

lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy
	@.venv/bin/lint-imports --no-cache

test: stack-up lint
	@.venv/bin/pytest $(PYTEST_ARGS)
