# Every target bootstraps .venv itself: a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint types pytest messages demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## migrate the configured database and start the bot
	@$(PY) -m bot run --migrate

test: lint types pytest  ## lint, types and the whole test suite

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)  ## chat with the bot in the terminal: seeded demo district, no token needed
	@$(PY) -m demo

bench: $(STAMP)  ## benchmarks; their numbers are in the README
	$(PY) -m bench.reminders
	$(PY) -m bench.reports
	$(PY) -m bench.flows

messages: $(STAMP)  ## refresh the translation catalogues after changing user-facing text
	$(PY) tools/messages.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
