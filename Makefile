# Entry points: make demo, make test, make bench. Everything runs from the
# virtual environment in .venv, created from requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: venv lint test test-unit test-integration test-e2e test-molecule test-isolated demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

lint: venv
	ruff check .
	ruff format --check .
	yamllint --strict .
	ansible-lint

test: lint test-unit test-integration test-e2e test-molecule test-isolated

test-unit: venv
	pytest tests/unit

test-integration: venv
	pytest tests/integration

test-e2e: venv
	pytest tests/e2e

# The role on this machine under a throwaway base folder, as root. Measured on
# a 2-core machine: 30-45 s when idle, 2 min when other jobs load it.
test-molecule: venv
	molecule test -s default

# The role in a podman container with the real paths, as root. Installs
# podman and debootstrap from Debian's packages and builds the node image
# when they are missing (1-2.5 min, mostly debootstrap), then 1.5-2.5 min
# for the scenario (measured on the same 2-core machine).
test-isolated: venv
	tests/support/install-podman.sh
	molecule/isolated/build-image.sh
	molecule test -s isolated

demo: venv
	$(BIN)/python tools/demo.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache .cache
