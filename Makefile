# The two commands the README gives: `make demo` (the main job) and `make test` (the test suite).
# Both set up a virtual environment from scratch on first use, with exactly the versions in requirements.lock.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch, pinned in the lock; the machine's wheel folder (PIP_FIND_LINKS) holds it.
TORCH := $(shell sed -n 's/^\(torch==[^ ]*\).*/\1/p' requirements.lock)
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, on its own: nothing after it can pull a CUDA build.
	$(PY) -m pip install -q "$(TORCH)"
	# Every other package at its locked version, each checked against its locked hashes.
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $@

.PHONY: setup test test-fast test-localstack test-localstack-ci demo lint bench lock
setup: $(VENV)/.installed

# The whole suite, then the LocalStack lane's representative part (test-localstack-ci). The lane's install (mostly
# downloads, about 2 minutes when not cached) runs in the background meanwhile, so it adds little to the wall time.
# The suite runs on two processes (pytest-xdist, a module per process at a time: most tests wait on the moto
# server, the broker or a worker), each process and the workers it starts on one torch thread (two processes of
# two threads on two cores made the tiny models' small operations 7-12x slower). The `serial` tests (processes
# killed, recovery deadlines) run alone afterwards, so no other test's CPU use stretches their deadlines.
test: setup
	$(PY) -m ruff check .
	bash infra/localstack/install.sh $(LOCALSTACK_VENV) > .localstack-install.log 2>&1 & install=$$!; \
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile -m "not serial" && $(PY) -m pytest -q -p no:cacheprovider -m serial; status=$$?; \
	wait $$install || { echo "LocalStack lane install failed:"; cat .localstack-install.log; exit 1; }; \
	[ $$status -eq 0 ] || exit $$status; \
	LF_TEST_AWS=localstack $(PY) -m pytest -q -p no:cacheprovider $(LOCALSTACK_CI_TESTS)

# The pure tier (no network) and the use cases against in-memory fakes of the ports: seconds, no servers.
test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/usecases

# The LocalStack lane: LocalStack (no Docker) in its own Python 3.13 venv, built once and cached by its marker,
# in place of moto for the integration and e2e suites (Tansu for Kafka, as usual), plus the lane's own tests
# (the template deployed into LocalStack's CloudFormation). See infra/localstack/install.sh.
LOCALSTACK_VENV ?= .localstack-venv
LOCALSTACK_INPUTS := infra/localstack/install.sh infra/localstack/requirements.txt \
	$(wildcard infra/localstack/*/pyproject.toml infra/localstack/*/*.py)

$(LOCALSTACK_VENV)/.installed: $(LOCALSTACK_INPUTS)
	bash infra/localstack/install.sh $(LOCALSTACK_VENV)

test-localstack: setup $(LOCALSTACK_VENV)/.installed
	LF_TEST_AWS=localstack $(PY) -m pytest -q -p no:cacheprovider tests/integration tests/e2e tests/localstack

# The lane's representative part, run at the end of `make test` (about 30 s with the install cached, 2-core
# machine): the lane's own tests (the template deployed into LocalStack's CloudFormation, the lane's differences)
# and the integration modules where LocalStack's own S3 and SQS differ from moto's (notifications through SQS,
# presigned uploads). DynamoDB there is moto's backend (the plugin), so its modules add nothing in the lane.
LOCALSTACK_CI_TESTS := tests/localstack tests/integration/test_s3_events_handler.py tests/integration/test_uploads.py

test-localstack-ci: setup $(LOCALSTACK_VENV)/.installed
	LF_TEST_AWS=localstack $(PY) -m pytest -q -p no:cacheprovider $(LOCALSTACK_CI_TESTS)

demo: setup
	$(VENV)/bin/lorafoundry demo

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) bench/pipeline_overhead.py
	$(PY) bench/train_throughput.py
	$(PY) bench/adapter_switch.py
	$(PY) -m bench.api_throughput
	$(PY) bench/worker_takeover.py

# Re-resolve every dependency to the newest versions pyproject.toml allows (torch stays at its pin), with
# hashes, for the Linux x86_64 / Python 3.11 machines the project runs on. Then run `make test` and commit.
lock: $(VENV)/bin/uv
	echo "$(TORCH)" | $(VENV)/bin/uv pip compile pyproject.toml - --all-extras --generate-hashes --upgrade \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links $(FIND_LINKS) \
		--custom-compile-command "make lock" -o requirements.lock

# uv at its locked version, without installing the rest (the lock may be the thing that is broken).
$(VENV)/bin/uv:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$$(sed -n 's/^\(uv==[^ ]*\).*/\1/p' requirements.lock)"
