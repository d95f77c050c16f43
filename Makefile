# `make all`: set up and run every implemented question; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: all test benchmark q5_2 plots

all: q5_2

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

q5_2: $(VENV)/.installed
	$(PY) codes/q5_2_mlp.py

# Redraw every figure from the committed results files, without training.
plots: $(VENV)/.installed
	$(PY) codes/q5_2_mlp.py --plot-only

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

benchmark: $(VENV)/.installed
	$(PY) codes/benchmark.py
