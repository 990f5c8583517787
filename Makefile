# The two commands the README gives: `make demo` (the main job) and `make test` (the test suite).
# Both set up a virtual environment from scratch on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: the project's range accepts it, so nothing pulls CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

.PHONY: setup test demo lint bench
setup: $(VENV)/.installed

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/lorafoundry demo

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) bench/pipeline_overhead.py
	$(PY) bench/train_throughput.py
	$(PY) bench/adapter_switch.py
