# Native (no Docker) commands. `make help` lists them.
SHELL := /bin/bash
# The system interpreter when there is one: the stack's services run as an
# unprivileged user, who cannot use an interpreter under /root (pyenv, conda).
PYTHON ?= $(or $(wildcard /usr/bin/python3),python3)
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-$(notdir $(PYTHON))-system
FETCH_STAMP := .stack/classpath/.fetched

.DEFAULT_GOAL := help
.PHONY: help deps venv fetch stack-up stack-down stack-status demo up down status watch supervise resnapshot clean test test-unit lint connectors bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## install missing system packages (PostgreSQL, Java 17, Maven) from Debian
	@bash stack/install-deps.sh

# pip's own output goes to $(VENV)/pip-install.log; stack/install_progress.py prints
# what it is doing and how far along it is, a line every few seconds.
$(VENV_STAMP): producer/pyproject.toml sink/pyproject.toml
	@echo "venv: $(VENV) on $(PYTHON), then producer[dev] and sink (pip's output: $(VENV)/pip-install.log)"
	@$(PYTHON) -m venv --clear $(VENV)
	@$(PYTHON) -m stack.install_progress --label pip --log $(VENV)/pip-install.log pip -- \
		$(VENV)/bin/pip install --progress-bar off -e './producer[dev]' -e ./sink
	@touch $@

venv: $(VENV_STAMP) ## create .venv with the project and its test tools

SINK_PLUGIN_SOURCES := $(shell find plugins/cassandra-sink -type f -not -path '*/target/*')

$(FETCH_STAMP): versions.env stack/fetch.sh stack/maven/kafka.pom.xml stack/maven/cassandra.pom.xml plugins/pom.xml $(SINK_PLUGIN_SOURCES)
	PYTHON=$(PYTHON) bash stack/fetch.sh
	@touch $@

fetch: $(FETCH_STAMP) ## resolve Kafka, Connect, Debezium, Cassandra from Maven Central; build the Cassandra sink plugin

stack-up: deps venv fetch ## start the native stack only (Postgres, Kafka, Connect, Cassandra)
	$(PY) -m stack up

stack-down: ## stop the native stack (and the pipeline on it), keep the data
	@$(PY) -m stack down

stack-status: ## one line per component; non-zero exit if any is down
	@$(PY) -m stack status

demo: deps venv fetch ## the whole pipeline offline: stack, schemas, connectors, sink, simulator, producer
	$(PY) -m stack pipeline --source demo

up: deps venv fetch ## the whole pipeline against live Binance (BINANCE_API_URL), in the background
	$(PY) -m stack pipeline --source live

down: ## stop everything (producer, simulator, sink, stack), keep the data
	@$(PY) -m stack down

status: ## every process, connector, table freshness, the slot; non-zero exit if anything is down, failing or stale
	@$(PY) -m stack status

watch: ## the pipeline live in the terminal: status, rows/s per table in both stores, latest prices
	@$(PY) -m stack watch

supervise: ## start the supervisor that restarts crashed components, if not running (make demo/up start it)
	@$(PY) -m stack supervise

resnapshot: ## after a lost replication slot: Debezium snapshots every table again, Cassandra catches up
	@$(PY) -m stack resnapshot

clean: ## stop everything and delete .stack/ (data, logs, pids, configs, fetched jars; ~/.m2 stays)
	@if [ -x $(PY) ]; then $(PY) -m stack clean; else rm -rf .stack; fi

test: deps venv fetch ## run every test: unit, then integration on the native stack
	$(PY) -m pytest tests

test-unit: venv fetch ## unit tests only (no services; some read the jars make fetch resolved)
	$(PY) -m pytest tests/unit

lint: venv ## ruff
	$(VENV)/bin/ruff check .

connectors: venv ## regenerate register_cassandra.json from producer/capstock/model/tables.py
	$(VENV)/bin/cap-stock connectors --write

bench: stack-up ## every benchmark, each figure next to its baseline and goal; writes bench/results/<date>.md
	PYTHONPATH=. $(PY) bench/run_all.py
