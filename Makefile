# onecrew-chat: `make run` starts the service with embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast bench soak emulator clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/onecrew-chat serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python bench/emulator_cpu.py

# Minutes, not part of `make test`: emulator, API and two workers as processes, faults and kill -9 (README, "Soak").
soak: $(STAMP)
	$(BIN)/python -m soak $(SOAK_ARGS)

emulator: $(STAMP)
	$(BIN)/onecrew-chat stream-emulator

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info var
