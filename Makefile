# Set-up and the entry points the README starts with:
#   make run        creates .venv, installs convbench, and compares ResNet50 with ResNet75-MoD on the CPU
#   make test       creates .venv, installs convbench with its test tools and extras, lints, runs the fast tests
#   make test-slow  the slow tests (exports, real measurements); CI runs both (.ci/run)
#   make install-system  GPU machines whose python3 already has a CUDA torch (often without a package registry):
#                   .venv over the system's site packages, convbench added without touching torch
#   make offline-deps    copies the pure-Python dependencies from .venv into .offline-deps/, for install-system
#                   on a machine without a registry (copy the project with that folder)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install install-system offline-deps run test test-slow lint browser clean-cache

# Pure-Python dependencies (and theirs) that a system python with torch may lack; module name = distribution name.
PURE_DEPS := fvcore iopath yacs termcolor tabulate portalocker tqdm typer rich onnxscript
# Compiled dependencies: install-system uses the system's and says which are missing.
SYSTEM_DEPS := torchvision numpy scipy pandas matplotlib onnx onnxruntime
OFFLINE_DEPS := .offline-deps
missing_deps = $$($(BIN)/python -c 'import importlib.util as u, sys; \
	print(" ".join(m for m in sys.argv[1:] if u.find_spec(m) is None))' $(PURE_DEPS))
site_packages = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

$(BIN)/convbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,openvino,gpu,timm]'
	touch $@

install: $(BIN)/convbench

# torch, torchvision and whatever else the system has stay as they are: convbench goes in without dependencies
# (editable; where the system's setuptools cannot build it, a .pth file and a launcher do the same), and only the
# missing pure-Python dependencies are added, from .offline-deps/ when it exists, else from the registry, with the
# system's torch and torchvision as constraints so that nothing replaces them.
install-system:
	$(if $(shell $(PYTHON) -c 'import torch' 2>/dev/null && echo yes),,$(error $(PYTHON) has no torch: install a \
	CUDA build of torch and torchvision for it first (pytorch.org) or run make install where PyPI is reachable))
	@if [ -f $(VENV)/pyvenv.cfg ] && ! grep -q '^include-system-site-packages = true' $(VENV)/pyvenv.cfg; then \
	  echo "make install-system: $(VENV) is a venv of its own; remove it or give VENV=another-folder" >&2; exit 2; fi
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --no-index -e . 2>/dev/null || { \
	  echo "$(CURDIR)" > "$(site_packages)/convbench-source.pth" && \
	  printf '#!%s\nfrom convbench.cli.main import app\napp()\n' "$(abspath $(BIN))/python" > $(BIN)/convbench && \
	  chmod +x $(BIN)/convbench; }
	@missing="$(missing_deps)"; [ -z "$$missing" ] && exit 0; \
	if [ -d $(OFFLINE_DEPS) ]; then echo "$(CURDIR)/$(OFFLINE_DEPS)" > "$(site_packages)/convbench-offline-deps.pth"; \
	else $(BIN)/python -c 'import torch, torchvision as v; print(f"torch=={torch.__version__}\ntorchvision=={v.__version__}")' \
	  > $(VENV)/system-torch.txt && \
	  $(BIN)/python -m pip install --quiet --timeout 15 --retries 1 -c $(VENV)/system-torch.txt $$missing; fi; \
	missing="$(missing_deps)"; [ -z "$$missing" ] || { echo "make install-system: missing $$missing and no \
	registry reachable: run make offline-deps where one is and copy $(OFFLINE_DEPS)/ along" >&2; exit 2; }
	@missing=$$($(BIN)/python -c 'import importlib.util as u, sys; \
	print(" ".join(m for m in sys.argv[1:] if u.find_spec(m) is None))' $(SYSTEM_DEPS)); [ -z "$$missing" ] || { \
	echo "make install-system: $(PYTHON) lacks $$missing (not pure Python): install them for it first" >&2; exit 2; }
	@$(BIN)/python -c 'import torch, convbench.cli.main; print(f"convbench over the system torch {torch.__version__}")'

offline-deps: install
	rm -rf $(OFFLINE_DEPS) && mkdir $(OFFLINE_DEPS)
	for m in $(PURE_DEPS); do cp -r "$(site_packages)/$$m" $(OFFLINE_DEPS)/; done

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
