# Two commands for a fresh machine: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bridge serve --config config.yaml

lint: $(STAMP)
	$(BIN)/ruff check bridge connectors tests bench
	$(BIN)/ruff format --check bridge connectors tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q -n 2

test: lint typecheck pytest

# Each bench at its default size (bench/README.md); `make bench` runs them all, one after
# another. `make bench-smoke` runs each for a few seconds (`--smoke`), as `make test` does.
BENCHES := bench-intake bench-onec-calls bench-balance bench-retailcrm-mirror bench-mirror \
	bench-bitrix-mirror bench-retention bench-events-list
.PHONY: $(BENCHES) bench-smoke

bench: $(BENCHES)

bench-intake: $(STAMP)
	$(BIN)/python bench/intake.py

bench-onec-calls: $(STAMP)
	$(BIN)/python bench/onec_calls.py

bench-balance: $(STAMP)
	$(BIN)/python bench/balance.py

bench-retailcrm-mirror: $(STAMP)
	$(BIN)/python bench/retailcrm_mirror.py

bench-mirror: $(STAMP)
	$(BIN)/python bench/mirror.py

bench-bitrix-mirror: $(STAMP)
	$(BIN)/python bench/bitrix_mirror.py

bench-retention: $(STAMP)
	$(BIN)/python bench/retention.py

bench-events-list: $(STAMP)
	$(BIN)/python bench/events_list.py

# The same on PostgreSQL (scratch databases, dropped).
.PHONY: bench-events-list-postgres
bench-events-list-postgres: $(STAMP)
	$(BIN)/python bench/events_list.py --store postgresql

# SQLite beside one, two and three instances on one PostgreSQL (scratch databases, dropped).
.PHONY: bench-intake-postgres
bench-intake-postgres: $(STAMP)
	$(BIN)/python bench/intake.py --store postgresql

bench-smoke: $(STAMP)
	$(BIN)/pytest -q tests/acceptance/test_benches.py

clean:
	rm -rf $(VENV) var/*.db var/*.db-wal var/*.db-shm
