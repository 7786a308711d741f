# Passerelle developer tasks. Everything runs from a local venv built from pyproject.toml.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=
FAULTS_ARGS ?=

.PHONY: install system-deps test fuzz faults lint sandbox bench clean

install: $(VENV)/.installed

# Re-install only when the dependency list changes; the marker records a finished install.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ required, found " + sys.version)'
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Servers the end-to-end tests run for real that come from Debian, not PyPI: Prosody (XMPP).
# Installed when missing and we are root (as in CI); otherwise their tests skip, or fail with
# CI=true.
system-deps:
	@if ! command -v prosody >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing prosody for the XMPP end-to-end tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q prosody >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null && apt-get install -y -q prosody >/dev/null; } \
	      || echo "Could not install prosody: the XMPP end-to-end tests cannot run"; \
	  else \
	    echo "prosody is not installed (apt-get install prosody): XMPP end-to-end tests skip"; \
	  fi; \
	fi

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
