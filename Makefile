# onecrew-chat: `make run` starts the service with embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run dev-token lint format test test-fast test-load bench soak emulator clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `make run PORT=8080 HOST=0.0.0.0`: without them, the PORT/HOST environment variables, else 127.0.0.1:8000.
run: $(STAMP)
	$(BIN)/onecrew-chat serve $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

# `make dev-token USER=<uuid>`: a JWT for that user, signed with the secret `make run` uses (same folder).
# USER counts only when given on the command line (the shell's $$USER is the login name).
TOKEN_USER = $(or $(USER_ID),$(if $(filter command line,$(origin USER)),$(USER)))
dev-token: $(STAMP)
	@test -n "$(TOKEN_USER)" || { echo "usage: make dev-token USER=<user uuid>" >&2; exit 2; }
	@$(BIN)/onecrew-chat dev-token $(TOKEN_USER)

# Lint: ruff (rules and formatting) over the code, mypy --strict over src/onecrew_chat (settings in pyproject.toml).
LINT_PATHS := $(wildcard src tests bench scripts soak)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# Rewrite the code the way `make lint` wants it: ruff's safe fixes, then ruff format.
format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# The whole suite, after lint (so CI's `make test` fails on a lint error too), then its 15 slowest tests.
test: lint
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

# While working: lint, then the suite without the tests marked slow (processes, waits by design; tests/conftest.py).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# `make test` while busy loops hold the machine's load average at LOAD (README, "Tests on a loaded machine").
LOAD ?= 10
TEST_LOAD_CMD ?= $(MAKE) test
test-load: $(STAMP)
	$(BIN)/python scripts/under_load.py --load $(LOAD) -- $(TEST_LOAD_CMD)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python bench/emulator_cpu.py
	$(BIN)/python -m bench.import_directory $(IMPORT_BENCH_ARGS)

# Minutes, not part of `make test`: emulator, API and two workers as processes, faults and kill -9 (README, "Soak").
soak: $(STAMP)
	$(BIN)/python -m soak $(SOAK_ARGS)

emulator: $(STAMP)
	$(BIN)/onecrew-chat stream-emulator

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info var
