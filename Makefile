# The two commands a new user needs (both set everything up first):
#   make demo   -> renders the built-in sample to demo.mp4
#   make test   -> lint (ruff), type checks (mypy), then the test suite
.PHONY: setup demo test bench clean

VENV ?= .venv

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/ecg-render demo -o demo.mp4

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VENV)/bin/python bench/run_bench.py

clean:
	rm -rf demo.mp4 .pytest_cache
