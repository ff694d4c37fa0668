# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: run demo screenshots test install lint typecheck imports shape chromium test-tools pytest bench bench-quick bench-publish bench-backlog clean fmt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/omniflow dev

# `make run` with simulated traffic once it is ready (README "Simulated traffic"); every SLA is
# 30 s here, so the exceptions the desk leaves escalate while you watch.
DEMO_SLAS := {"fraud_review":30,"address_invalid":30,"payment_pending":30,"po_approval":30,"supplier_unconfirmed":30,"receipt_discrepancy":30,"short_pick":30,"backorder_aging":30,"return_approval":30,"refund_approval":30,"refund_overdue":30,"count_variance":30,"bill_mismatch":30,"channel_sync_failed":30}
demo: $(STAMP)
	OMNIFLOW_EXCEPTION_SLA_SECONDS='$(DEMO_SLAS)' OMNIFLOW_LOG_LEVEL=WARNING $(BIN)/omniflow dev --simulate

# Every README screenshot regenerated into docs/img/ (tools/screenshots.py): starts `omniflow dev`
# with demo data on free ports, runs the simulator a minute, photographs the console, the
# simulator's summary and the Temporal UI, stops it. A stack already up (`make run`):
#   make screenshots SCREENSHOTS_ARGS='--api-url http://127.0.0.1:8000 --ui-url http://127.0.0.1:8233'
screenshots: $(STAMP) chromium
	$(BIN)/python -m tools.screenshots $(SCREENSHOTS_ARGS)

test: $(STAMP)
	$(MAKE) --no-print-directory lint typecheck imports shape chromium test-tools pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy .

imports: $(STAMP)
	$(BIN)/lint-imports

# No unexplained `# fmt: skip`, no module over its size limit, no substantive duplicate
# (where the `duplicates` command is installed): see tools/code_shape.py.
shape: $(STAMP)
	$(BIN)/python -m tools.code_shape

# Chromium for the headless /docs check (tests/test_docs_offline.py): installed with apt-get
# only when missing and apt-get is there; otherwise that test skips and says why.
chromium:
	sh tools/install_chromium.sh

# curl and jq for the README's quick tour run as a test (tests/test_readme_tour.py): installed
# the same way, only when missing; otherwise that test skips and says why.
test-tools:
	sh tools/install_test_tools.sh

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

# Channel publishing lag at 100 and 1,000 ATP changes/s (bench/publish.py); not part of `make test`.
bench-publish: $(STAMP)
	$(BIN)/python -m bench.publish

# 10,000 orders backordered and 10,000 on a payment hold, then one arrival for all (bench/backlog.py):
# RSS, history per order, the dispatcher's orders/s. `make bench-backlog BACKLOG_ARGS="--orders 1000"`.
BACKLOG_ARGS ?=
bench-backlog: $(STAMP)
	$(BIN)/python -m bench.backlog $(BACKLOG_ARGS)

# Schemathesis over every operation (tests/test_schemathesis.py) with FUZZ_EXAMPLES requests an
# operation, random each run; `make test` runs the same test with 10, derandomized.
FUZZ_EXAMPLES ?= 200
.PHONY: fuzz
fuzz: $(STAMP)
	OMNIFLOW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_schemathesis.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
