# make test     - install everything into .venv, lint, the fast tier (docs/testing.md): under 10 minutes
# make test-all - install, lint, the fast tier, the slow one (fault suite, Binder session) and real Kafka
# make test-kafka - the notebooks and group/fault tests on real Apache Kafka, both lines at once (Java 17+, Maven)
# make lab   - the tutorial without Docker: embedded Kafka broker + JupyterLab on 127.0.0.1 (KAFKA=kraft: real Kafka)
# make e2e   - run the notebooks in JupyterLab in headless Chromium, as a learner would
# make bench - the performance figures: one table, build/bench.json, one more line in build/bench-history.jsonl
# make broker-dies - three real Kafka nodes, one killed while sending and reading: nothing lost (Java 17+)
# make check - is this laptop ready for class? Under 2 minutes, says ready / not ready with the fix
# make launch-links - the Binder and Codespaces links of this copy's GitHub remote
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
E2E_INSTALLED := $(VENV)/.installed-e2e

# Two workers, each with its own broker, replay and data folder (conftest.py); the tests of one
# xdist_group (notebooks that must run in order) stay on one worker.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadgroup

.PHONY: install lint lint-notebooks test test-all test-faults lab broker e2e bench clean check launch-links kafka-jars test-kafka \
	test-kafka-zookeeper test-kafka-kraft broker-dies

# The package in editable mode: `import pm25` works from any folder, and edits to src/pm25 count at once.
$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --editable .
	touch $@

install: $(INSTALLED)

PYTHON_SOURCES := src tests benchmarks e2e conftest.py

lint: install
	$(BIN)/ruff check --extend-exclude '*.ipynb' $(PYTHON_SOURCES)
	$(BIN)/ruff format --check --quiet $(PYTHON_SOURCES)
	$(BIN)/mypy src/pm25
	$(MAKE) --no-print-directory lint-notebooks

# The notebooks as committed (git's index): lint-clean and without outputs. The working copies are the
# learner's: answers and outputs saved by JupyterLab must not make `make test` fail. Not a git checkout
# (a ZIP download): nothing is committed from here, so nothing to check.
# --keep-id: tests find cells by their descriptive ids, which plain nbstripout would renumber 0, 1, 2, ...
lint-notebooks:
	@if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		echo "Not a git checkout: the committed notebooks are checked in CI."; exit 0; fi; \
	for notebook in $$(git ls-files '*.ipynb'); do \
		git show ":$$notebook" | $(BIN)/ruff check --quiet --stdin-filename "$$notebook" - || exit 1; \
		git show ":$$notebook" | $(BIN)/nbstripout --keep-id --verify >/dev/null || { \
			echo "$$notebook as staged in git has outputs: run $(BIN)/nbstripout --keep-id $$notebook, then git add it."; \
			exit 1; }; \
	done; echo "Committed notebooks: lint-clean, no outputs."

test: lint
	$(PYTEST) -m "not slow and not realkafka"
	@if command -v java >/dev/null && command -v mvn >/dev/null; then why="make test-all runs them"; \
	else why="make test-all runs them; the real-Kafka tier needs Java 17+ and Maven, not found here"; fi; \
	echo "Skipped: the slow tier and the real-Kafka tier ($$why)."

# The real-Kafka tier is not skipped here: without Java or Maven, test-all fails and says which is missing.
test-all: lint
	$(PYTEST) -m "not realkafka"
	$(MAKE) --no-print-directory test-kafka

test-faults: install
	$(BIN)/python -m pytest -m faults tests

# KAFKA=zookeeper or KAFKA=kraft: real Apache Kafka instead of the embedded broker (Java 17+, make kafka-jars).
KAFKA ?= embedded
lab: install $(if $(filter embedded,$(KAFKA)),,kafka-jars)
	KAFKA=$(KAFKA) $(BIN)/python -m pm25.classroom.lab

broker: install
	$(BIN)/python -m pm25.brokers.embedded

# Real Apache Kafka as plain JVM processes: Kafka 3.9 + ZooKeeper (docker-compose.yml's Confluent 7.9)
# and Kafka 4 KRaft (docker-compose.kraft.yml). Maven resolves each line's jars from maven/<line>/pom.xml
# into build/kafka/<line>/lib once; afterwards nothing is downloaded until the pom changes.
KAFKA_LINES := zookeeper kraft
KAFKA_JARS := $(foreach line,$(KAFKA_LINES),build/kafka/$(line)/lib/.resolved)

build/kafka/%/lib/.resolved: maven/%/pom.xml
	@command -v mvn >/dev/null || { echo "make kafka-jars needs Maven and Java 17+: mvn is not on PATH."; exit 1; }
	rm -rf $(@D)
	mvn --batch-mode --quiet -f $< dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(@D)
	touch $@

kafka-jars: $(KAFKA_JARS)

# The notebooks, the group and fault tests and tests/realkafka on each real broker, one pytest session per
# broker line (PM25_BROKER picks the session's broker in conftest.py; a real broker evicts, so the fault
# tests' eviction case runs too). Figures and differences from the embedded broker: docs/real-kafka.md.
REAL_KAFKA_TESTS := src/*.ipynb tests/realkafka tests/faults/test_consumer_group.py \
	tests/faults/test_consumer_restart.py tests/faults/test_interrupt_and_rerun.py \
	tests/faults/test_stream_processor_kill.py

# The two lines side by side: each session has its own JVM broker, replay, data folder and free ports, and
# spends most of its time waiting (session time-outs, idle consumers), so two at once take little more than
# one. --output-sync prints each line's whole output when it ends, not interleaved; --keep-going runs both.
test-kafka: install kafka-jars
	@echo "Real Kafka: $(KAFKA_LINES) side by side; each one's output follows when it ends."
	@$(MAKE) --no-print-directory --jobs=2 --keep-going --output-sync=target $(KAFKA_LINES:%=test-kafka-%)

# One line alone: make test-kafka-zookeeper (Kafka 3.9 + ZooKeeper) or make test-kafka-kraft (Kafka 4).
$(KAFKA_LINES:%=test-kafka-%): test-kafka-%: install kafka-jars
	@echo "== $*"
	env -u KAFKA_BOOTSTRAP_SERVERS PM25_BROKER=$* PM25_BROKER_EVICTS=1 $(BIN)/python -m pytest $(REAL_KAFKA_TESTS)

# "When a broker dies" (TEACHERS.md): three Kafka 4 nodes, the leader of a partition killed while a producer
# sends and a consumer group reads; prints the leader move, the in-sync replicas shrinking and "lost 0".
broker-dies: install kafka-jars
	$(BIN)/python -m pm25.classroom.broker_dies

$(E2E_INSTALLED): $(INSTALLED) requirements-e2e.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-e2e.txt
	touch $@

# Debian's Chromium, driven by Playwright: a browser download cannot work without internet.
e2e: $(E2E_INSTALLED)
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(BIN)/python -m pytest e2e -o addopts="" -p no:nbmake -ra

bench: install
	$(BIN)/python benchmarks/run_all.py

# Both run on the standard library of the system's Python (-I: isolated), so they work before `make install`.
check:
	@$(PYTHON) -I src/pm25/classroom/laptop_check.py

launch-links:
	@$(PYTHON) -I src/pm25/classroom/launch_links.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache .hypothesis src/pm25.egg-info
