# Everything a fresh machine needs: `make demo` (main job) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED_NLTK := $(abspath ../shared/nltk_data)
export NLTK_DATA ?= $(if $(wildcard $(SHARED_NLTK)),$(SHARED_NLTK),)
export PYTHONUNBUFFERED := 1

.PHONY: install test lint demo demo-train clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" "setuptools>=77,<81" wheel
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff format --check groupvit mmseg_plugins tools tests configs
	$(VENV)/bin/ruff check groupvit mmseg_plugins tools tests configs

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
