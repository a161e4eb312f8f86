# The two commands the README documents: `make run` and `make test`.
# Both build the virtualenv first; the Kafka broker is fetched and started by the commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench lock clean

# constraints.txt pins every package, ours and theirs, to the versions the tests last passed
# with: a clean clone installs those, not whatever was released since (pyproject.toml's
# ranges stay open for installing Switchboard into another environment).
$(BIN)/.installed: pyproject.toml constraints.txt
	@# Checked before the venv exists: pip refuses an older Python only after creating it,
	@# and a venv made again by another Python keeps the first one as .venv/bin/python.
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "error: Switchboard needs Python 3.11+, and '$(PYTHON)' is not (make ... PYTHON=python3.11)" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/switchboard run

test: lint typecheck
	$(BIN)/pytest --durations=25

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

bench: $(BIN)/.installed
	$(BIN)/python -m bench

# Newer versions on purpose: resolve pyproject.toml's ranges afresh in a scratch venv, write
# the result to constraints.txt; then run `make test` and commit both if it passes.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[dev]'
	{ echo '# Written by `make lock`: the exact versions `make test` last passed with.'; \
	  .lock-venv/bin/pip freeze --exclude switchboard; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
