"""End to end through the real nbgrader CLI, on a temporary course built from the repository's own
nbgrader_config.py and generated source notebook (the graphs assignment: the smallest).

One course, six submissions, autograded twice: by one `nbgrader autograde` process (course A) and by
`autograder nbgrader-autograde --jobs 2` (course B, a copy); both gradebooks must hold the same scores,
and those must be what the grading pipeline gives the same code directly."""
from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil

import pytest

from autograder import nbgrader_tools as nbt
from autograder.assignments import exercises
from autograder.exercise import Seeds
from autograder.notebooks import grade_id

pytestmark = pytest.mark.xdist_group("nbgrader")  # (pytest 9 + xdist 3.8 ignore it: see `courses`)

ASSIGNMENT = "graphs"
TIME_LIMIT = 2.0   # seconds per case in grade cells (AUTOGRADER_NOTEBOOK_TIME_LIMIT)
CELL_TIMEOUT = 20  # nbgrader's per-cell timeout in the test course (Execute.timeout; default 120 here)


def _submissions(course):
    """reference, template, one-mistake, and `hostile`: three independent troubles in three cells (a
    warning in AddGate, an infinite loop in SigmoidGate.backward, an error quoting its inputs in
    l2_of_matvec), in one notebook because each autograded notebook costs a kernel and two torch imports."""
    release = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    source = nbt.load_notebook(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    subs = nbt.demo_submissions(course, ASSIGNMENT)            # reference, template, one-mistake
    hostile = nbt.solution_filled(release, source)
    nbt.edit_solution(hostile, "graphs-part2", nbt.insert_after_begin(
        "import warnings; warnings.warn('a warning from the student', UserWarning)"))
    nbt.edit_solution(hostile, "graphs-part2",
                      lambda s: s + "\nimport warnings\nwarnings.warn('at the top level too')\n")
    nbt.edit_solution(hostile, "graphs-part5", nbt.insert_after_begin("while True:\n    pass"))
    nbt.edit_solution(hostile, "graphs-part8", nbt.insert_after_begin(
        "raise ValueError(f'inputs W={W.tolist()} x={x.tolist()}')"))
    subs["hostile"] = hostile
    # Patches what the grade cells call (they run in the student's kernel): full marks in the gradebook,
    # which `nbgrader-autograde --verify` catches by regrading the code outside the kernel.
    tampered = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbt.edit_solution(tampered, "graphs-part2", lambda s: s + "\nimport autograder.nbgrader_tools as _t\n"
                      "_t.notebook_grade = lambda exercise_id, points=None, **kw: points\n")
    subs["tampered"] = tampered
    # An infinite loop at the top level of a solution cell: nbgrader interrupts the cell at its timeout
    # and goes on; the grader leaves the interrupted cell out of the module.
    stuck = nbt.solution_filled(release, source)
    nbt.edit_solution(stuck, "graphs-part5", lambda s: s + "\nimport time\nwhile True:  # (sleeps: spares the CPU)\n    time.sleep(0.05)\n")
    subs["stuck"] = stuck
    return subs


def _build(base, runner) -> dict:
    course_a = base / "a"
    nbt.make_course(course_a, [ASSIGNMENT])
    with open(course_a / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_TIMEOUT}\n")
    for student, nb in _submissions(course_a).items():
        nbt.submit(course_a, ASSIGNMENT, student, nb)
    course_b = base / "b"
    shutil.copytree(course_a, course_b)
    env = {nbt.TIME_LIMIT_ENV: str(TIME_LIMIT)}
    nbt.run_nbgrader(["autograde", ASSIGNMENT], course_a, env=env)
    report = nbt.parallel_autograde(course_b, ASSIGNMENT, jobs=2, env=env)
    assert not report["failed"], report["failed"]
    nbt.run_nbgrader(["export", "--to", "grades.csv"], course_b)
    nbt.run_nbgrader(["generate_feedback", ASSIGNMENT], course_b)
    os.environ[nbt.TIME_LIMIT_ENV] = str(TIME_LIMIT)
    try:  # what the pipeline gives each autograded notebook's code directly, outside the kernel
        expected = nbt.regrade_outside_the_kernel(course_b, ASSIGNMENT, runner=runner)
    finally:
        del os.environ[nbt.TIME_LIMIT_ENV]
    return {"scores_a": nbt.gradebook_scores(course_a, ASSIGNMENT),
            "scores_b": nbt.gradebook_scores(course_b, ASSIGNMENT), "expected": expected}


@pytest.fixture(scope="module")
def courses(tmp_path_factory, runner):
    """Built once per test run, even when pytest-xdist spreads this module's tests over its workers
    (their temporary directories share a parent; a lock makes the second worker wait and reuse it)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    base = shared / "nbgrader-e2e"
    with open(shared / "nbgrader-e2e.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = base / "results.json"
        if not done.is_file():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            done.write_text(json.dumps(_build(base, runner)))
        results = json.loads(done.read_text())
    submissions = {p.name: nbt.load_notebook(p / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
                   for p in sorted((base / "a" / "submitted").iterdir())}
    return {"a": base / "a", "b": base / "b", "submissions": submissions, **results}


@pytest.fixture(scope="module")
def expected(courses):
    return courses["expected"]


def _feedback(courses, student) -> str:
    return (courses["b"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()


def test_release_notebook_has_stubs_instead_of_solutions(courses, root):
    release = nbt.load_notebook(courses["a"] / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    solution_cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solution_cells
    reference = (root / "reference" / "graphs.py").read_text()
    for cell in solution_cells:
        assert "BEGIN SOLUTION" not in cell.source and "raise NotImplementedError()" in cell.source
    assert "dq = 2.0 * q" in reference and not any("dq = 2.0 * q" in c.source for c in release.cells)


def test_gradebook_scores_are_the_pipelines(courses, expected):
    honest = set(courses["submissions"]) - {"tampered"}
    assert {s: courses["scores_b"][s] for s in honest} == {s: expected[s] for s in honest}


def test_verify_catches_a_notebook_that_patched_the_grade_cells(courses, expected):
    points = {grade_id(ex.id): float(ex.points) for ex in exercises(ASSIGNMENT)}
    assert courses["scores_b"]["tampered"] == points          # what the kernel reported...
    assert expected["tampered"] == {cell: 0.0 for cell in points}  # ...for code that does nothing
    problems = nbt.verify(courses["b"], ASSIGNMENT, regraded=expected)
    assert problems and all(line.startswith("tampered ") for line in problems)
    assert len(problems) == len(points)


def test_parallel_autograde_records_what_nbgrader_autograde_records(courses):
    assert courses["scores_a"] == courses["scores_b"]
    assert set(courses["scores_a"]) == set(courses["submissions"])


def test_reference_full_marks_template_zero(courses):
    scores = courses["scores_b"]
    points = {grade_id(ex.id): float(ex.points) for ex in exercises(ASSIGNMENT)}
    assert scores["reference"] == points
    assert scores["template"] == {cell: 0.0 for cell in points}


def test_one_mistake_loses_only_its_exercise(courses):
    scores = courses["scores_b"]
    lost = {cell for cell, s in scores["one-mistake"].items() if s < scores["reference"][cell]}
    assert lost == {"graphs-l2_of_matvec"}
    assert 0 < sum(scores["one-mistake"].values()) < sum(scores["reference"].values())


def _autograded_cell(courses, student, cell_id):
    nb = nbt.load_notebook(courses["b"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id)


def test_hostile_code_loses_only_the_cells_it_breaks(courses):
    scores = courses["scores_b"]
    lost = {cell for cell, s in scores["hostile"].items() if s < scores["reference"][cell]}
    # SigmoidGate.backward loops (its check and the neuron built from it); l2_of_matvec raises.
    assert lost == {"graphs-SigmoidGate", "graphs-sigmoid_neuron", "graphs-l2_of_matvec"}
    assert all(scores["hostile"][cell] == 0 for cell in lost)
    assert "timeout" in "".join(o.get("text", "") for o in _autograded_cell(courses, "hostile",
                                                                              "graphs-SigmoidGate").outputs)


def test_a_top_level_infinite_loop_loses_only_that_cells_points(courses):
    scores = courses["scores_b"]
    lost = {cell for cell, s in scores["stuck"].items() if s < scores["reference"][cell]}
    assert lost == {"graphs-SigmoidGate", "graphs-sigmoid_neuron"}   # the class that cell defines, and its user
    cell = _autograded_cell(courses, "stuck", "graphs-part5")
    assert any(o.get("ename") in nbt.INTERRUPTIONS for o in cell.outputs)


def test_a_warning_in_student_code_costs_nothing(courses):
    assert courses["scores_b"]["hostile"]["graphs-AddGate"] == courses["scores_b"]["reference"]["graphs-AddGate"]
    cell = _autograded_cell(courses, "hostile", "graphs-part2")
    assert any(o.get("name") == "stderr" for o in cell.outputs), "the warning did reach the solution cell's stderr"
    grade_cell = _autograded_cell(courses, "hostile", "graphs-AddGate")
    assert not any(o.get("name") == "stderr" for o in grade_cell.outputs)


def test_grades_csv_has_every_submission(courses):
    with open(courses["b"] / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(courses["submissions"])
    for student, cells in courses["scores_b"].items():
        assert float(rows[student]["score"]) == pytest.approx(sum(cells.values()))


def test_feedback_shows_the_per_tensor_table(courses):
    html = _feedback(courses, "one-mistake")
    for word in ("graphs.l2_of_matvec", "exact", "approximate", "maxdiff", "dW", "dx", "(2, 2)"):
        assert word in html


def test_feedback_never_shows_hidden_inputs(courses):
    ex = next(e for e in exercises(ASSIGNMENT) if e.id == "graphs.l2_of_matvec")
    cases = ex.cases(Seeds.from_env(hidden=True))
    html = _feedback(courses, "hostile")
    public = [c for c in cases if not c.hidden]
    hidden = [c for c in cases if c.hidden]
    assert hidden
    # The student's error message quotes its inputs: shown for the public case the table explains...
    assert repr(public[0].inputs["W"].tolist()[0][0]) in html
    # ...and withheld for every hidden one.
    for case in hidden:
        for value in case.inputs["W"].flatten().tolist()[:4] + case.inputs["x"].tolist()[:2]:
            assert repr(value) not in html


def test_the_command_line_verifies_a_course(courses):
    """`autograder nbgrader-autograde` on an autograded course (--no-force: nothing to redo), with --verify."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "autograder", "nbgrader-autograde", ASSIGNMENT, "--course",
                           str(courses["b"]), "--jobs", "2", "--no-force", "--verify",
                           "--student", "reference", "--student", "tampered"],
                          capture_output=True, text=True, env={**os.environ, nbt.TIME_LIMIT_ENV: str(TIME_LIMIT)},
                          timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    mismatches = [line for line in proc.stdout.splitlines() if line.startswith("MISMATCH")]
    assert mismatches and all(line.startswith("MISMATCH tampered ") for line in mismatches)
    assert "reference" in proc.stdout and "total" in proc.stdout.splitlines()[0]
