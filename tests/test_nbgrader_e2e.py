"""End to end through the real nbgrader CLI, on a temporary course built from the repository's own
nbgrader_config.py and generated source notebook (the graphs assignment: the smallest).

One course, six submissions, autograded twice: by one `nbgrader autograde` process (course A) and by
`autograder nbgrader-autograde --jobs 2` (course B, a copy); both gradebooks must hold the same scores,
and those must be what the grading pipeline gives the same code directly."""
from __future__ import annotations

import csv
import shutil

import pytest

from autograder import nbgrader_tools as nbt
from autograder.assignments import exercises
from autograder.exercise import Seeds
from autograder.notebooks import grade_id
from autograder.pipeline import grade

pytestmark = pytest.mark.xdist_group("nbgrader")

ASSIGNMENT = "graphs"
TIME_LIMIT = 2.0   # seconds per case in grade cells (AUTOGRADER_NOTEBOOK_TIME_LIMIT)


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
    return subs


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbgrader-course")
    course_a = base / "a"
    nbt.make_course(course_a, [ASSIGNMENT])
    submissions = _submissions(course_a)
    for student, nb in submissions.items():
        nbt.submit(course_a, ASSIGNMENT, student, nb)
    course_b = base / "b"
    shutil.copytree(course_a, course_b)
    env = {nbt.TIME_LIMIT_ENV: str(TIME_LIMIT)}
    nbt.run_nbgrader(["autograde", ASSIGNMENT], course_a, env=env)
    report = nbt.parallel_autograde(course_b, ASSIGNMENT, jobs=2, env=env)
    assert not report["failed"], report["failed"]
    nbt.run_nbgrader(["export", "--to", "grades.csv"], course_b)
    nbt.run_nbgrader(["generate_feedback", ASSIGNMENT], course_b)
    return {"a": course_a, "b": course_b, "submissions": submissions,
            "scores_a": nbt.gradebook_scores(course_a, ASSIGNMENT),
            "scores_b": nbt.gradebook_scores(course_b, ASSIGNMENT)}


@pytest.fixture(scope="module")
def expected(courses, runner):
    """What the pipeline gives each submission's code directly (public and hidden cases), per grade cell."""
    import tempfile
    from pathlib import Path
    out = {}
    for student, nb in courses["submissions"].items():
        with tempfile.TemporaryDirectory() as tmp:
            nbt.write_modules(Path(tmp), nbt.notebook_modules(nb))
            out[student] = {}
            for ex in exercises(ASSIGNMENT):
                result = grade(tmp, [ex], hidden=True, runner=nbt._BudgetRunner(runner, TIME_LIMIT))
                out[student][grade_id(ex.id)] = round(ex.points * nbt.earned_fraction(result), 4)
    return out


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
    assert courses["scores_b"] == expected


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
