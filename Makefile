# `make all`: set up and run every implemented question; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: all test benchmark checks q1 q5_2 q5_3 q5_5 plots report

.NOTPARALLEL:
all: checks q1 q5_2 q5_3 q5_5 report

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

checks: $(VENV)/.installed
	$(PY) codes/q2_q4_checks.py

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

# The PDF, from the committed (or freshly written) figures and generated snippets.
# Fails on a LaTeX error, a missing figure (an error) or an undefined reference.
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-fonts-recommended texlive-latex-extra texlive-science
report:
	@command -v latexmk >/dev/null || { echo "TeX is missing: apt-get install -y --no-install-recommends $(TEX_PACKAGES)"; exit 1; }
	cd report && latexmk -g -pdf -interaction=nonstopmode -halt-on-error report.tex >/dev/null || { tail -n 20 report.log; exit 1; }
	@! grep -n -E "undefined|Missing character" report/report.log
	@echo "report/report.pdf"
