# make test  - install everything into .venv, lint, run all tests and the notebooks headless
# make lab   - the tutorial without Docker: embedded Kafka broker + JupyterLab on 127.0.0.1
# make e2e   - run the notebooks in JupyterLab in headless Chromium, as a learner would
# make bench - the performance figures, in one table and build/bench.json
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
E2E_INSTALLED := $(VENV)/.installed-e2e

.PHONY: install lint test test-faults lab broker e2e bench clean

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(INSTALLED)

lint: install
	$(BIN)/ruff check src tests benchmarks e2e
	$(BIN)/nbstripout --verify src/*.ipynb

test: lint
	$(BIN)/python -m pytest

test-faults: install
	$(BIN)/python -m pytest -m faults tests

lab: install
	cd src && ../$(BIN)/python -m pm25.lab

broker: install
	cd src && ../$(BIN)/python -m pm25.broker

$(E2E_INSTALLED): $(INSTALLED) requirements-e2e.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-e2e.txt
	touch $@

# Debian's Chromium, driven by Playwright: a browser download cannot work without internet.
e2e: $(E2E_INSTALLED)
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(BIN)/python -m pytest e2e -o addopts="" -p no:nbmake -ra

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
