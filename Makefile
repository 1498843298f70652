# onecrew-chat: `make run` starts the service with embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two installs into one virtualenv: `make run` needs only the runtime dependencies (requirements.lock);
# `make test`, `make lint` and the rest add the dev tools (requirements-dev.lock). Both locks pin every
# package with its hashes (pip --require-hashes); the project itself is installed on top with --no-deps.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
STAMP := $(DEV_STAMP)

.PHONY: install install-runtime lock run dev-token lint format test test-fast test-load bench soak emulator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEV_STAMP): requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(RUNTIME_STAMP)

install: $(DEV_STAMP)

install-runtime: $(RUNTIME_STAMP)

# Rewrite both locks from pyproject.toml after a dependency changes (pins already in a lock are kept unless
# pyproject.toml moved them). Universal: one lock for Linux, macOS and Windows, the image included.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock"
lock: | $(DEV_STAMP)
	$(UV_COMPILE) -o requirements.lock
	$(UV_COMPILE) --extra dev --constraint requirements.lock -o requirements-dev.lock

# `make run PORT=8080 HOST=0.0.0.0`: without them, the PORT/HOST environment variables, else 127.0.0.1:8000.
run: $(RUNTIME_STAMP)
	$(BIN)/onecrew-chat serve $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

# `make dev-token USER=<uuid>`: a JWT for that user, signed with the secret `make run` uses (same folder).
# USER counts only when given on the command line (the shell's $$USER is the login name).
TOKEN_USER = $(or $(USER_ID),$(if $(filter command line,$(origin USER)),$(USER)))
dev-token: $(RUNTIME_STAMP)
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

# `make test` while busy loops hold the machine's load average at LOAD (docs/development.md, "Tests on a loaded machine"; docs/testing.md).
LOAD ?= 10
TEST_LOAD_CMD ?= $(MAKE) test
test-load: $(STAMP)
	$(BIN)/python scripts/under_load.py --load $(LOAD) -- $(TEST_LOAD_CMD)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python bench/emulator_cpu.py
	$(BIN)/python -m bench.import_directory $(IMPORT_BENCH_ARGS)
	$(BIN)/python -m bench.stream_pool
	$(BIN)/python -m bench.backfill

# Minutes, not part of `make test`: emulator, API and two workers as processes, faults and kill -9 (docs/development.md, "Soak").
soak: $(STAMP)
	$(BIN)/python -m soak $(SOAK_ARGS)

emulator: $(RUNTIME_STAMP)
	$(BIN)/onecrew-chat stream-emulator

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info var
