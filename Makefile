# `make all`: set up and run every implemented question; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: all test benchmark q1 q5_2 q5_3 q5_5 plots

.NOTPARALLEL:
all: q1 q5_2 q5_3 q5_5

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

q1: $(VENV)/.installed
	$(PY) codes/q1_playground.py

q5_2: $(VENV)/.installed
	$(PY) codes/q5_2_mlp.py

q5_3: $(VENV)/.installed
	$(PY) codes/q5_3_flooding.py

# Q5.3 and Q5.5 read Q5.2's results, so `all` runs the questions in this order, one at a time.
q5_5: $(VENV)/.installed
	$(PY) codes/q5_5_cnn.py

# Redraw every figure from the committed results files, without training.
plots: $(VENV)/.installed
	$(PY) codes/q1_playground.py --plot-only
	$(PY) codes/q5_2_mlp.py --plot-only
	$(PY) codes/q5_5_cnn.py --plot-only
	$(PY) codes/q5_3_flooding.py --plot-only

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

benchmark: $(VENV)/.installed
	$(PY) codes/benchmark.py
