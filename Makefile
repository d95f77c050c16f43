# `make all`: set up and run every implemented question; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: all quick test benchmark checks q1 q5_2 q5_3 q5_5 plots report submission

.NOTPARALLEL:
# Every question at the assignment's settings (GPU when present; without one only the steps a
# CPU finishes, unless ALLOW_CPU=1), the run on record in
# results/run_summary.json, then the PDF (which says what to install if TeX is missing).
all: $(VENV)/.installed
	$(PY) codes/run_all.py $(if $(filter 1 yes true,$(ALLOW_CPU)),--allow-cpu)
	$(MAKE) report

# Every script with few epochs and a subset, into results/quick/ (never the real results).
quick: $(VENV)/.installed
	$(PY) codes/run_all.py --quick

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

# Q5.3 and Q5.5 draw Q5.2's run beside theirs when results/q5_2_mlp.json exists.
q5_5: $(VENV)/.installed
	$(PY) codes/q5_5_cnn.py

# Redraw every figure from the committed results files, without training; a question
# whose results do not exist yet is skipped with a message. Q5.5's redraw includes its
# learning-rate check when the check's results are there.
PLOTTED := q1_playground.py:q1_playground.json q5_2_mlp.py:q5_2_mlp.json q5_5_cnn.py:q5_5_cnn.json \
	q5_3_flooding.py:q5_3_flooding_lr0.1.json
plots: $(VENV)/.installed
	@for pair in $(PLOTTED); do \
		script=$${pair%%:*}; results=results/$${pair#*:}; \
		if [ -f $$results ]; then $(PY) codes/$$script --plot-only || exit 1; \
		else echo "skipped codes/$$script: no $$results yet"; fi; \
	done

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

benchmark: $(VENV)/.installed
	$(PY) codes/benchmark.py

# The PDF, from the committed (or freshly written) figures and generated snippets. Fails on a
# LaTeX error, an undefined reference, or a figure or snippet the report includes that does not
# exist (named with the script that makes it). latexmk rebuilds only when an input changed.
# After a failed build its record (report.fdb_latexmk) goes, or latexmk would repeat the failure unbuilt.
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-fonts-recommended texlive-latex-extra texlive-science poppler-utils

report: $(VENV)/.installed
	@command -v latexmk >/dev/null || { echo "TeX is missing: apt-get install -y --no-install-recommends $(TEX_PACKAGES)"; exit 1; }
	@$(PY) codes/submission.py --check-report
	@cd report && latexmk -pdf -interaction=nonstopmode -halt-on-error report.tex >/dev/null || { rm -f report.pdf report.fdb_latexmk; tail -n 20 report.log; exit 1; }
	@! grep -n -E "undefined|Missing character" report/report.log || { rm -f report/report.pdf report/report.fdb_latexmk; exit 1; }
	@echo "report/report.pdf"

# dist/<STUDENT_ID>.zip: report_<id>.pdf (the report with the id on its title page) and codes/.
# The id reaches the script as an environment variable, never through a shell command line, and
# as typed: $(value) keeps make from running a $(shell ...) in it.
override STUDENT_ID := $(value STUDENT_ID)
export STUDENT_ID
submission: report
	@$(PY) codes/submission.py
