# Passerelle developer tasks. Everything runs from a local venv built from pyproject.toml.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3
PYTEST_ARGS ?=

.PHONY: install test lint sandbox bench clean

install: $(VENV)/.installed

# Re-install only when the dependency list changes; the marker records a finished install.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ required, found " + sys.version)'
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

sandbox: $(VENV)/.installed
	$(PY) -m tests.sandbox

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .test-servers
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
