# Set-up and the two entry points the README starts with:
#   make run   creates .venv, installs convbench, and compares ResNet50 with ResNet75-MoD on the CPU
#   make test  creates .venv, installs convbench with its test tools, lints, and runs the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test lint clean-cache

$(BIN)/convbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/convbench

run: install
	$(BIN)/convbench compare resnet50 resnet75-mod --device cpu

lint: install
	$(BIN)/ruff check convbench tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

clean-cache:
	rm -rf $${CONVBENCH_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/convbench}
