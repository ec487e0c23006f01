# The two set-up commands are `make run` and `make test`; everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast lint bench clean install dev docs sandbox test-packages vendor

comma := ,

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# Debian packages a command needs: installed as root where apt-get exists, otherwise
# the one line that installs them is printed (and CI=true fails). Actions run in a
# bubblewrap sandbox (docs/security.md); the tests also read a pg_dump.
define need
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(2) ($(3))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(1) is missing ($(3)): install it with 'sudo apt-get install $(2)'$(4)"; \
	    [ "$(CI)" != true ] || exit 1; \
	  fi; }
endef

sandbox:
	$(call need,bwrap,bubblewrap,the action sandbox,$(comma) or run actions unsandboxed with EXECD_SANDBOX=none (never with untrusted tenants))

test-packages: sandbox
	$(call need,pg_dump,postgresql-client,the sealed-secrets tests)
	$(call need,chromium,chromium,the dashboard's browser tests)
	$(call need,jq,jq,the documentation's examples)
	$(call need,curl,curl,the documentation's examples)

# `serve` migrates as it starts (EXECD_AUTO_MIGRATE), after it has the port. The
# python actions of examples/ can be imported unless EXECD_ACTIONS_PATH says otherwise.
run: install sandbox
	EXECD_ACTIONS_PATH="$${EXECD_ACTIONS_PATH-$(CURDIR)/examples}" exec $(BIN)/execd serve

# Tests run in parallel processes (pytest-xdist): most of the suite waits on servers,
# workers and browsers, so four share two cores well. TEST_WORKERS=0 runs them in one.
# The fault suite (killed and frozen processes, a database taken away) runs apart, after
# the rest: a process frozen inside a transaction holds back, for every database of the
# PostgreSQL server, the horizon event followers read up to. Tests marked `alone` time
# themselves in milliseconds: they run last, by themselves.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest
# Each part (exit status 5: the arguments selected none of its tests).
TESTS = $(PYTEST) -n $(TEST_WORKERS) -m "$(1)" $(2) $(PYTEST_ARGS) || [ $$? = 5 ]
ALONE = $(PYTEST) -m alone $(1) $(PYTEST_ARGS) || [ $$? = 5 ]

test: dev test-packages
	$(call TESTS,not alone and not fault,)
	$(call TESTS,fault and not alone,)
	$(call ALONE,)

# The fast lane: the domain, the engine and the store in process (both databases), no
# server or CLI process; about 40 seconds here.
test-fast: dev
	$(call TESTS,not alone,tests/unit tests/integration)
	$(call ALONE,tests/unit tests/integration)

lint: dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser files served with the dashboard and /docs, from npm at pinned versions.
vendor:
	./scripts/vendor.sh

docs: install
	$(BIN)/python -m execd.cli.reference --write docs/cli.md

bench: install
	$(BIN)/python bench/throughput.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .execd .pytest_cache .mypy_cache .ruff_cache
