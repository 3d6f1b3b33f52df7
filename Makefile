# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev migrate seed lint bench bench-postgres serve-production loadtest report-png clean vendor-frontend screenshots

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The runtime list alone (what `make run` and production need); the tests and checks add requirements-dev.txt.
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

run: seed
	@echo "Serving on http://$(HOST):$(PORT)/ (API docs at http://$(HOST):$(PORT)/api/docs/)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The suite in parallel workers (pytest-xdist), then the schemathesis fuzzing on its own so its summary line
# (operations and examples tried) is printed: xdist workers' terminal summaries are not shown.
TEST_WORKERS ?= 2
test: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --ignore=tests/test_schemathesis.py
	$(BIN)/python -m pytest tests/test_schemathesis.py

# ruff's rules, the complexity limit (C901, max-complexity in pyproject.toml) and the formatting, then the
# import contracts (import-linter, [tool.importlinter] in pyproject.toml): the layers of docs/architecture.md.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-postgres: install-dev
	@test -n "$(DATABASE_URL)" || { echo "Set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test"; exit 1; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

serve-production: install
	DJANGO_SETTINGS_MODULE=config.settings.production $(BIN)/python manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=config.settings.production $(BIN)/python manage.py collectstatic --noinput -v0
	DJANGO_SETTINGS_MODULE=config.settings.production $(BIN)/gunicorn -c config/gunicorn.conf.py config.wsgi:application

# The load test (bench/locustfile.py) against an instance already served, e.g. `make serve-production` on
# PostgreSQL, then bench/loadtest_check.py against the same DATABASE_URL: every answer held to the database.
# See bench/README.md for the full recipe and the figures.
LOADTEST_HOST ?= http://127.0.0.1:8000
LOADTEST_USERS ?= 16
LOADTEST_SPAWN_RATE ?= 4
LOADTEST_DURATION ?= 2m
loadtest: install-dev
	$(BIN)/locust -f bench/locustfile.py --headless --host $(LOADTEST_HOST) --users $(LOADTEST_USERS) \
		--spawn-rate $(LOADTEST_SPAWN_RATE) --run-time $(LOADTEST_DURATION) --csv bench/results/loadtest \
		--stop-timeout 30 --only-summary --exit-code-on-error 0
	$(BIN)/python -m bench.loadtest_check $(LOADTEST_CHECK_ARGS)

# The compliance report's HTML page rendered by headless Chromium (Debian's chromium), for a look or print.
report-png: seed
	@command -v chromium >/dev/null 2>&1 || { echo "Install Debian's chromium: apt-get install chromium"; exit 1; }
	$(BIN)/python manage.py compliance_report --pilot $(or $(PILOT),1) --period $(or $(PERIOD),$(shell date +%Y)) --format html --output report.html
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$$(mktemp -d) --screenshot=$(CURDIR)/report.png --window-size=1200,2000 file://$(CURDIR)/report.html
	@echo "Wrote report.html and report.png"

# NHS.UK frontend and axe-core, pinned in package.json and package-lock.json, compiled and copied into the
# repository (web/static/web/nhsuk/, tests/browser/vendor/) so that `make run` and `make test` need no npm.
# Run this only to move to another version: edit package.json, run it, commit what it wrote.
NHSUK := node_modules/nhsuk-frontend/dist/nhsuk
vendor-frontend:
	npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p web/static/web/nhsuk/assets tests/browser/vendor
	npx sass --no-source-map --style=compressed --load-path=node_modules --quiet-deps web/frontend/nhsuk.scss web/static/web/nhsuk/nhsuk-frontend.min.css
	cp $(NHSUK)/nhsuk-frontend.min.js web/static/web/nhsuk/nhsuk-frontend.min.js
	rm -rf web/static/web/nhsuk/assets/images && cp -r $(NHSUK)/assets/images web/static/web/nhsuk/assets/images
	cp node_modules/nhsuk-frontend/LICENSE* web/static/web/nhsuk/ 2>/dev/null || cp node_modules/nhsuk-frontend/package.json web/static/web/nhsuk/package.json
	cp node_modules/axe-core/axe.min.js node_modules/axe-core/LICENSE tests/browser/vendor/
	@echo "Vendored nhsuk-frontend $$(node -p "require('nhsuk-frontend/package.json').version") and axe-core $$(node -p "require('axe-core/package.json').version")"

# Screenshots of each journey for the README (docs/screenshots/*.png), taken by headless Chromium against a live
# test server with the browser tests' own world.
screenshots: install-dev
	@command -v chromium >/dev/null 2>&1 || { echo "Install Debian's chromium: apt-get install chromium"; exit 1; }
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -p no:xdist tests/browser -m browser -q

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache staticfiles report.html report.png
