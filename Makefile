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

demo: migrate
	@$(LIFTLEDGER) elevators import sample
	@echo
	@$(LIFTLEDGER) stack status
	@echo
	@echo "Service URLs (eval \"\$$($(LIFTLEDGER) stack env)\" to use them in a shell):"
	@$(LIFTLEDGER) stack env | sed 's/\(DATABASE_URL=postgresql:\/\/liftledger:\)[^@]*@/\1***@/'
	@echo "Device credentials: $(LIFTLEDGER) elevators credentials nc01-b01-e1"
	@echo "Ingest:             $(LIFTLEDGER) collector --metrics-port 9108"
	@echo "Simulated fleet:    $(LIFTLEDGER) simulate --faults random --speedup 10"
	@echo "Stop everything:    $(LIFTLEDGER) stack down"

lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy

test: stack-up lint
	@.venv/bin/pytest $(PYTEST_ARGS)
