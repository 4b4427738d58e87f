"""Per assignment, in one run, on the same notebooks (the course's notebook as students submit it: the
reference solution, the untouched release and one with a catalogued mistake), public and hidden cases:

- `grade-all --jobs 1` and `--jobs 2`: seconds per submission, and the speed-up of the second job;
- STOCK nbgrader: `nbgrader autograde` on a course of the same notebooks whose grade cells compare the
  student's functions with PyTorch autograd inside the kernel (the same cases and truths, computed there), as
  nbgrader courses usually do, with nbgrader's own configuration;
- nbgrader with our course configuration (the kernel runs the notebook for the feedback; our preprocessor
  grades outside the kernel in the sandbox);
- the ratio stock nbgrader s/notebook ÷ grade-all s/submission (goal >= 50x);
- where the time goes: each tool's fixed cost per run (grade-all: its workers importing torch, their
  sandboxes and the truths, from a run of FEW notebooks; nbgrader: its own start, from an autograde with
  nothing submitted) and its cost per further submission, and the ratio of the latter (what a large class
  sees: the headline ratio spreads nbgrader's start over its few notebooks and grade-all's over all of them).

BENCH_BATCH_ASSIGNMENTS (comma-separated; default all three), BENCH_BATCH_SUBMISSIONS (grade-all, default
60, as the issue measured: the run's fixed costs spread as in a class) and BENCH_BATCH_NBGRADER (notebooks per nbgrader course, default 3) change what is measured.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ASSIGNMENTS = os.environ.get("BENCH_BATCH_ASSIGNMENTS", "graphs,backprop_ninja,micrograd").split(",")
SUBMISSIONS = int(os.environ.get("BENCH_BATCH_SUBMISSIONS", "60"))
NBGRADER_SUBMISSIONS = int(os.environ.get("BENCH_BATCH_NBGRADER", "3"))
FEW = 4  # notebooks of the run that measures grade-all's fixed cost
SECRET = "bench-secret"
GOAL = 50

# A grade cell as a stock nbgrader course writes it: the student's code is called on the grader's cases in
# the kernel and compared with PyTorch autograd, computed there too (our cases, truths, drivers and judges,
# so both do the same work; nbgrader records the cell's points, all or nothing, when it raises nothing).
STOCK_CELL = '''# (stock nbgrader) {exercise}: your code against PyTorch autograd, in this kernel
import importlib, sys, types
import torch
from autograder.assignments import exercises
from autograder.core.exercise import Seeds
_ex = next(e for e in exercises({assignment!r}) if e.id == {exercise!r})
_student = types.ModuleType(_ex.module)
_student.__dict__.update({{k: v for k, v in globals().items() if not k.startswith("_")}})
_student.__file__ = "/nonexistent/" + _ex.module.replace(".", "/") + ".py"
for _name in (_ex.module, "micrograd.engine", "micrograd.nn", "micrograd"):
    sys.modules[_name] = _student
_where, _fn = _ex.driver.split(":")
_driver = getattr(importlib.import_module(_where), _fn)
from autograder.core.compare import PASSING
for _case in _ex.cases(Seeds(hidden=True, secret={secret!r})):
    _got = _driver(_student, _case.inputs)
    _wrong = [c.name for c in _ex.judge(_case, _got, _ex.truth(_case)) if c.verdict not in PASSING]
    assert not _wrong, f"wrong: {{_wrong}}"
'''

STOCK_CONFIG = '''# A stock nbgrader course: nbgrader's own autograde, the grade cells run in the kernel.
from autograder.integrations.nbgrader.tools import generate_assignment_preprocessors
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "stock"
c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.Execute.timeout = 120
'''


def stock_course(ours: Path, stock: Path, assignment: str) -> None:
    """A copy of our course whose grade cells compare with torch in the kernel, under nbgrader's defaults."""
    import nbformat
    from autograder.integrations.nbgrader import tools as nbt
    stock.mkdir(parents=True)
    (stock / "nbgrader_config.py").write_text(STOCK_CONFIG)
    shutil.copytree(ours / "source", stock / "source")
    path = stock / "source" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            exercise = meta["grade_id"].replace("-", ".", 1)
            cell.source = STOCK_CELL.format(assignment=assignment, exercise=exercise, secret=SECRET)
    nbformat.write(nb, str(path))
    nbt.run_nbgrader(["generate_assignment", assignment, "--force"], stock)


def autograde(course: Path, assignment: str, students: list[tuple[str, object]]) -> tuple[float, dict]:
    """Seconds per notebook of `nbgrader autograde` on `students`, and the gradebook's totals."""
    from autograder.integrations.nbgrader import tools as nbt
    for student, nb in students:
        nbt.submit(course, assignment, student, nb)
    started = time.perf_counter()
    nbt.run_nbgrader(["autograde", assignment], course, env={"AUTOGRADER_SECRET": SECRET})
    seconds = (time.perf_counter() - started) / len(students)
    return seconds, {s: sum(cells.values()) for s, cells in nbt.gradebook_scores(course, assignment).items()}


def nbgrader_start(course: Path, assignment: str) -> float:
    """Seconds of an `nbgrader autograde` with nothing submitted: nbgrader's own cost per run (it starts,
    finds no notebook and says so)."""
    from autograder.integrations.nbgrader import tools as nbt
    started = time.perf_counter()
    proc = nbt.run_nbgrader(["autograde", assignment], course, check=False, env={"AUTOGRADER_SECRET": SECRET})
    seconds = time.perf_counter() - started
    if "No notebooks were matched" not in proc.stdout + proc.stderr:
        raise RuntimeError(f"nbgrader autograde with nothing submitted: {(proc.stdout + proc.stderr)[-500:]}")
    return seconds


def grade_all(root: Path, out: Path, assignment: str, jobs: int) -> tuple[float, int]:
    """Seconds of the whole run, and the number of submissions it graded."""
    from autograder.integrations.batch import run_batch
    from autograder.core.exercise import Seeds
    started = time.perf_counter()
    summary = run_batch(root, out, jobs=jobs, assignments=[assignment], seeds=Seeds.for_credit(), progress=False)
    if summary.not_graded:
        print(f"  not graded: {summary.not_graded}")
    return time.perf_counter() - started, max(1, summary.graded)


def main() -> None:
    os.environ["AUTOGRADER_SECRET"] = SECRET
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    for assignment in ASSIGNMENTS:
        print(f"-- {assignment}", flush=True)
        try:
            measure(assignment)
        except Exception as exc:  # one assignment's failure: say so, measure the others
            print(f"  FAILED: {type(exc).__name__}: {str(exc)[:1500]}")


def measure(assignment: str) -> None:
    import nbformat
    from autograder.integrations.nbgrader import tools as nbt
    base = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        ours = base / "ours"
        nbt.make_course(ours, [assignment])
        kinds = list(nbt.demo_submissions(ours, assignment).items())
        root = base / "submissions"
        root.mkdir()
        students = []
        for i in range(SUBMISSIONS):
            kind, nb = kinds[i % len(kinds)]
            path = root / f"s{i:03d}-{kind}.ipynb"
            nbformat.write(nb, str(path))
            students.append((path.stem, nb))
        seconds, graded = grade_all(root, base / "out1", assignment, jobs=1)
        one = seconds / graded
        all_seconds, all_graded = grade_all(root, base / "out2", assignment, jobs=2)
        two = all_seconds / all_graded
        few = base / "few"
        few.mkdir()
        for path in sorted(root.iterdir())[:FEW]:
            shutil.copy(path, few / path.name)
        few_seconds, few_graded = grade_all(few, base / "out-few", assignment, jobs=2)
        scores = {s: json.loads((base / "out2" / f"{s}.json").read_text())["score"] for s, _ in students}
        print(f"grade-all ({SUBMISSIONS} notebooks): {one:.3f} s/submission with --jobs 1, {two:.3f} with --jobs 2: "
              f"--jobs 2 is {one / two:.2f}x --jobs 1 (goal >= 1.8x)", flush=True)

        chosen = students[:NBGRADER_SUBMISSIONS]
        stock = base / "stock"
        stock_course(ours, stock, assignment)
        stock_start = nbgrader_start(stock, assignment)
        t_stock, stock_scores = autograde(stock, assignment, chosen)
        t_ours, our_scores = autograde(ours, assignment, chosen)
        agree = all(abs(our_scores.get(s, -1) - scores[s]) < 0.01 for s, _ in chosen)
        print(f"stock nbgrader autograde (torch in the kernel): {t_stock:.2f} s/notebook; "
              f"with our course config: {t_ours:.2f} s/notebook ({t_ours / t_stock:.2f}x stock); "
              f"gradebook = grade-all's scores: {agree}")
        print(f"  stock gradebook totals: {sorted(set(round(v, 2) for v in stock_scores.values()))}; "
              f"ours: {sorted(set(round(v, 2) for v in our_scores.values()))}")
        ratio = t_stock / two
        print(f"ratio stock nbgrader ÷ grade-all --jobs 2: {ratio:.1f}x "
              f"(goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})", flush=True)
        # Where the time goes: a fixed cost per run, then a cost per submission (two runs of each tool).
        per_submission = (all_seconds - few_seconds) / max(1, all_graded - few_graded)
        fixed = few_seconds - few_graded * per_submission
        stock_per_notebook = (t_stock * len(chosen) - stock_start) / len(chosen)
        print(f"  where the time goes: grade-all --jobs 2 {fixed:.1f} s per run (workers importing torch, their "
              f"sandboxes, the truths; from {few_graded} notebooks) + {per_submission:.3f} s per submission; "
              f"stock nbgrader {stock_start:.1f} s per run (its own start) + {stock_per_notebook:.2f} s per notebook; "
              f"per submission beyond the fixed costs: {stock_per_notebook / per_submission:.1f}x", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
