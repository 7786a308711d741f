# Passerelle developer tasks. Everything runs from a local venv built from pyproject.toml.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=
FAULTS_ARGS ?=
# The tests drive Debian's chromium; Playwright's own browser builds are never fetched.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: install system-deps test fuzz faults lint sandbox bench clean

install: $(VENV)/.installed

# Re-install only when the dependency list changes; the marker records a finished install.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ required, found " + sys.version)'
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# What the end-to-end tests run for real that comes from Debian, not PyPI: Prosody (XMPP) and
# Chromium (the status page, driven by Playwright; Playwright never downloads a browser of its
# own here), and libmagic1, which the bridge itself needs (python-magic reads files' types with
# it). Installed when missing and we are root (as in CI); otherwise their tests skip, or fail
# with CI=true.
SYSTEM_DEPS := prosody chromium libmagic1

system-deps:
	@for package in $(SYSTEM_DEPS); do \
	  command -v $$package >/dev/null 2>&1 && continue; \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing $$package for the end-to-end tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$package >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null && apt-get install -y -q $$package >/dev/null; } \
	      || echo "Could not install $$package: the end-to-end tests that need it cannot run"; \
	  else \
	    echo "$$package is not installed (apt-get install $$package): the tests needing it skip"; \
	  fi; \
	done

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The fuzz suite alone, with many random examples per property (make test runs a bounded,
# repeatable number of them).
fuzz: $(VENV)/.installed
	FUZZ_PROFILE=fuzz $(PY) -m pytest -q tests/fuzz $(PYTEST_ARGS)

# The whole fault suite (about 20 minutes: ten SIGKILLs, a homeserver down 10 minutes...) on
# real servers and PostgreSQL at 127.0.0.1:5432; make test runs a short subset of it.
# FAULTS_ARGS=--help lists what can be shortened.
faults: $(VENV)/.installed system-deps
	$(PY) -m tests.faults $(FAULTS_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

sandbox: $(VENV)/.installed system-deps
	$(PY) -m tests.sandbox

bench: $(VENV)/.installed-bench
	$(PY) -m bench $(BENCH_ARGS)

# The benchmark's extra tools (plotting) on top of what the tests need.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .test-servers .faults
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
