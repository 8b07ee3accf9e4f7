# Set-up and the entry points the README starts with:
#   make run        creates .venv, installs convbench, and compares ResNet50 with ResNet75-MoD on the CPU
#   make test       creates .venv, installs convbench with its test tools and extras, lints, runs the fast tests
#   make test-slow  the slow tests (exports, real measurements); CI runs both (.ci/run)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test test-slow lint browser clean-cache

$(BIN)/convbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,openvino,gpu,timm]'
	touch $@

install: $(BIN)/convbench

run: install
	$(BIN)/convbench compare resnet50 resnet75-mod --device cpu

lint: install
	$(BIN)/ruff check convbench tests benchmarks examples
	$(BIN)/ruff format --check convbench tests benchmarks examples

test: lint browser
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -q -m slow

# The report's browser test drives the system's chromium (Debian's packages; browsers cannot be downloaded
# otherwise): installed here when running as root, else a one-line hint (the test skips, and fails under CI=true).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: the browser test needs chromium and chromedriver: sudo apt-get install chromium chromium-driver"; fi

clean-cache:
	rm -rf $${CONVBENCH_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/convbench}
