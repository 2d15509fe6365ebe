# Two commands a user needs: `make run` and `make test`. Both install what is missing first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test system venv rig guest lint bench clean unit integration

system:
	bash scripts/install-system.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: system $(STAMP)

rig: venv
	bash scripts/libvirtd-up.sh

guest: venv
	bash scripts/build-guest.sh

run: venv
	$(BIN)/rightsizer serve

test: rig guest
	bash scripts/test.sh

unit: venv
	$(BIN)/python -m pytest tests/unit -q

integration: rig guest
	$(BIN)/python -m pytest tests/integration -q

lint: venv
	$(BIN)/ruff check .

bench: rig guest
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var test-artifacts
