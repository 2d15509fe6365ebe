# Two commands a user needs: `make run` and `make test`. Both install what is missing first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test system-run system-test rig guest lint bench clean unit integration dist smoke

system-run:
	bash scripts/install-system.sh run

system-test:
	bash scripts/install-system.sh test

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	bash scripts/fetch-plotly.sh $(BIN)/python
	touch $@

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# serve: qemu:///system when it has domains, else an imported store, else the demo fleet (test driver)
run: system-run $(RUN_STAMP)
	$(BIN)/rightsizer serve

rig: system-test $(TEST_STAMP)
	bash scripts/libvirtd-up.sh

guest: system-test
	bash scripts/build-guest.sh

test: rig guest
	bash scripts/test.sh

unit: system-test $(TEST_STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: rig guest
	$(BIN)/python -m pytest tests/integration -q

# sdist + wheel in dist/ (the lean plotly.js bundle is fetched first and packaged; see docs/install.md)
dist: system-test $(TEST_STAMP)
	bash scripts/fetch-plotly.sh $(BIN)/python
	$(BIN)/python -m build --outdir dist .

# build the wheel, install it into a fresh venv in a temporary folder, run doctor and serve --demo there
smoke: system-test $(TEST_STAMP)
	$(PY) scripts/wheel_smoke.py --python $(BIN)/python

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

bench: rig guest
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var test-artifacts dist build
