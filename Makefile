# Control Plane: set-up, quickstart, checks and benchmarks. `make help` lists the targets.
#
# Every recipe runs as one bash script in strict mode, so a failing step fails the target.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PY := .venv/bin/python
RUFF := .venv/bin/ruff
PYTEST_ARGS ?=

# Start the throwaway PostgreSQL and Redis (scripts/services.sh) unless DATABASE_URL and REDIS_URL are
# both set already, and export their URLs. When the recipe ends -- success, failure or interrupt -- they
# are stopped, but only if this recipe started them: a pair brought up by `make services-up` stays up.
define with_services
if [[ -z "$${DATABASE_URL:-}" || -z "$${REDIS_URL:-}" ]]; then
	scripts/services.sh status >/dev/null || trap 'scripts/services.sh stop' EXIT
	trap 'exit 130' INT TERM
	scripts/services.sh start
	urls=$$(scripts/services.sh env)
	eval "$$urls"
fi
endef

.PHONY: help bootstrap chromium run test lint fmt bench screenshots services-up services-down

help:
	@echo "make run            quickstart on SQLite with demo data: http://127.0.0.1:8000/"
	echo "make test           lint, import layering, Django checks and the test suite on PostgreSQL and Redis (PYTEST_ARGS=...)"
	echo "make lint | fmt     ruff check and format check | format and fix"
	echo "make bench          benchmarks on PostgreSQL with fsync on"
	echo "make screenshots    console screenshots through Chromium"
	echo "make services-up    start the throwaway PostgreSQL and Redis; then: eval \"\$$(scripts/services.sh env)\""
	echo "make services-down  stop them"

bootstrap:
	@scripts/bootstrap.sh

chromium:
	@scripts/chromium.sh

# Always the SQLite, in-process quickstart, whatever the calling shell has configured.
run: bootstrap
	unset DATABASE_URL REDIS_URL
	export CONTROLPLANE_ENV=dev
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	$(PY) manage.py quickstart_admin
	exec $(PY) manage.py runserver 127.0.0.1:8000

test: bootstrap chromium
	$(with_services)
	$(RUFF) check .
	$(RUFF) format --check .
	# The layering (docs/architecture.md): an import that points the wrong way fails here.
	.venv/bin/lint-imports --no-cache
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	# Governance drift (docs/governance.md): schemas, fallbacks, modes, generated docs; no database needed.
	$(PY) manage.py governance validate --offline
	status=0
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) || status=$$?
	# pytest's 5 means "no tests collected": a suite that silently ran nothing must not pass.
	if ((status == 5)); then echo "make test: pytest collected no tests" >&2; fi
	exit $$status

lint: bootstrap
	$(RUFF) check .
	$(RUFF) format --check .
	.venv/bin/lint-imports --no-cache

# Fix first, then format: a fix (a removed import, say) can leave code the formatter would change.
# Findings that need a human still fail the target, but only after formatting.
fmt: bootstrap
	status=0
	$(RUFF) check --fix . || status=$$?
	$(RUFF) format .
	exit $$status

bench: bootstrap
	export PG_FSYNC=on # measure the durable configuration
	$(with_services)
	$(PY) -m bench

screenshots: bootstrap chromium
	$(with_services)
	SCREENSHOTS=1 $(PY) -m pytest tests/console/test_screenshots.py -p no:cacheprovider

services-up:
	scripts/services.sh start
	echo 'to use them: eval "$$(scripts/services.sh env)"'

services-down:
	scripts/services.sh stop
