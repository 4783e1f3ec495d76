# make test  - install everything into .venv, lint, run all tests and the notebooks headless
# make lab   - the tutorial without Docker: embedded Kafka broker + JupyterLab on 127.0.0.1
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install lint test test-faults lab broker clean

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(INSTALLED)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/nbstripout --verify src/*.ipynb

test: lint
	$(BIN)/python -m pytest

test-faults: install
	$(BIN)/python -m pytest -m faults tests

lab: install
	cd src && ../$(BIN)/python -m pm25.lab

broker: install
	cd src && ../$(BIN)/python -m pm25.broker

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
