# backprop-lab: `make check` grades your work; `make test` runs the project's tests.
# Both create the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUBMISSION ?= student_template
STAMP := $(VENV)/.installed

ROOT ?= submissions
OUT ?= grades
JOBS ?= 2

.PHONY: check test test-unit templates bench autograde grade-all gradescope clean help report notebook watch

help:
	@echo "make check [SUBMISSION=dir]  grade a submission on the public cases (default: student_template/)"
	@echo "make test                    run the whole test suite: unit, grading and e2e tiers (what CI runs; ~18 min)"
	@echo "make test-unit               the unit tier only, while editing (under a minute: no grading, nbgrader, browser)"
	@echo "make templates               regenerate student_template/ and the nbgrader notebooks from reference/"
	@echo "make bench                   speed benchmarks (figures and ratios from one run)"
	@echo "make autograde               the instructor flow with nbgrader on a demo course"
	@echo "make grade-all ROOT=dir      grade every submission under ROOT into OUT=grades/ (JOBS=2)"
	@echo "make gradescope ASSIGNMENT=graphs  build autograder-graphs.zip for Gradescope (needs AUTOGRADER_SECRET)"
	@echo "make watch [SUBMISSION=dir]   regrade on every save, only what the edit touches (A=backprop_ninja: one assignment)"
	@echo "make report [SUBMISSION=dir] write report.html: heatmaps, expression graphs, loss curve, names"
	@echo "make notebook [ASSIGNMENT=backprop_ninja]  open the student notebook in Jupyter"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

check: $(STAMP)
	$(BIN)/autograder check $(SUBMISSION)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# One process: the tier is mostly collection (torch's import), which pytest-xdist would pay once per worker.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

templates: $(STAMP)
	$(BIN)/autograder templates

bench: $(STAMP)
	$(BIN)/python -m benchmarks

autograde: $(STAMP)
	$(BIN)/python -m autograder.integrations.nbgrader.tools demo

grade-all: $(STAMP)
	$(BIN)/autograder grade-all $(ROOT) -o $(OUT) --jobs $(JOBS)

# One Gradescope assignment grades one of ours: ASSIGNMENT must be named (its default is the notebook's).
gradescope: $(STAMP)
	@test "$(origin ASSIGNMENT)" != file || { echo "make gradescope ASSIGNMENT=<micrograd|graphs|backprop_ninja|micrograd_exercises>: name the assignment this Gradescope autograder grades"; exit 2; }
	$(BIN)/autograder gradescope-package -a $(ASSIGNMENT) -o autograder-$(ASSIGNMENT).zip

A ?=
watch: $(STAMP)
	$(BIN)/autograder watch $(SUBMISSION) $(if $(A),-a $(A))

report: $(STAMP)
	$(BIN)/autograder report $(SUBMISSION) -o report.html

ASSIGNMENT ?= backprop_ninja
notebook: $(STAMP)
	@test -x $(BIN)/jupyter-notebook || { echo "Jupyter is not installed in .venv: $(BIN)/pip install notebook"; exit 1; }
	$(BIN)/jupyter-notebook student_template/notebooks/$(ASSIGNMENT).ipynb

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
