"""`autograder grade-all` on 200 submissions next to plain `nbgrader autograde` on 20 of the same
submissions, per assignment (graphs and backprop_ninja by default), both in notebook form (the course's
notebook as students submit it: the reference solution, the untouched release, and one with a catalogued
mistake), public and hidden cases both. Prints seconds per submission of each and the ratio, measured in
this one run, and whether the two agree on the scores of the submissions they both graded.

BENCH_BATCH_SUBMISSIONS and BENCH_BATCH_NBGRADER change the counts (200 and 20); BENCH_BATCH_ASSIGNMENTS
the assignments (comma-separated).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ASSIGNMENTS = os.environ.get("BENCH_BATCH_ASSIGNMENTS", "graphs,backprop_ninja").split(",")
SUBMISSIONS = int(os.environ.get("BENCH_BATCH_SUBMISSIONS", "200"))
NBGRADER_SUBMISSIONS = int(os.environ.get("BENCH_BATCH_NBGRADER", "20"))
JOBS = 2
GOAL = 50


def _course_notebooks(base: Path, assignment: str):
    """(course dir, [(kind, notebook)]), or (None, why) when the nbgrader course is not available."""
    try:
        from autograder import nbgrader_tools as nbt
    except ImportError as exc:
        return None, f"autograder.nbgrader_tools cannot be imported ({exc})"
    if not (Path(nbt.REPO) / "assignments" / "source" / assignment).is_dir():
        return None, f"assignments/source/{assignment} is missing (run `make templates`)"
    course = base / "course"
    try:
        nbt.make_course(course, [assignment])
        return course, list(nbt.demo_submissions(course, assignment).items())
    except Exception as exc:  # report, and still measure grade-all
        return None, f"building the nbgrader course failed ({type(exc).__name__}: {str(exc)[:300]})"


def _folder_submissions(root: Path, assignment: str) -> list[tuple[str, Path]]:
    """Without the course: the same three kinds as module files (reference, template, one mistake)."""
    repo = Path(__file__).resolve().parent.parent
    ref = (repo / "reference" / f"{assignment}.py").read_text()
    kinds = {"reference": ref, "template": (repo / "student_template" / f"{assignment}.py").read_text(),
             "one-mistake": ref.replace("dq = 2.0 * q", "dq = q", 1)}
    out = []
    for i in range(SUBMISSIONS):
        kind = list(kinds)[i % len(kinds)]
        folder = root / f"s{i:03d}-{kind}"
        folder.mkdir()
        (folder / f"{assignment}.py").write_text(kinds[kind])
        out.append((folder.name, folder))
    return out


FORK_PROBE = """
import os, time, torch
from autograder.worker import _collapse_to_huge_pages
def forks(n=10):
    t = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return (time.perf_counter() - t) / n
forks(2)
plain = forks()
_collapse_to_huge_pages()  # what the worker does before serving
print(plain, forks())
"""


def fork_cost() -> tuple[float, float]:
    """Seconds to fork (and reap) a process that has imported torch, with 4 KB pages and with the
    worker's huge pages: the fork server's cost per exercise."""
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", FORK_PROBE], capture_output=True, text=True, timeout=300)
    try:
        plain, huge = (float(x) for x in run.stdout.split())
    except ValueError:
        return float("nan"), float("nan")
    return plain, huge


def exercises_per_submission(assignment: str) -> tuple[int, int]:
    from autograder.assignments import exercises
    from autograder.exercise import Seeds
    exs = exercises(assignment)
    return len(exs), sum(len(ex.cases(Seeds.for_credit())) for ex in exs)


def main() -> None:
    for assignment in ASSIGNMENTS:
        print(f"-- {assignment}", flush=True)
        measure(assignment)


def measure(assignment: str) -> None:
    from autograder.batch import run_batch
    from autograder.exercise import Seeds
    os.environ.setdefault("AUTOGRADER_SECRET", "bench-secret")  # hidden cases, for both (nbgrader inherits it)
    base = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        course, kinds = _course_notebooks(base, assignment)
        root = base / "submissions"
        root.mkdir()
        if course is None:
            skipped = kinds
            students = _folder_submissions(root, assignment)
        else:
            import nbformat
            skipped = None
            students = []
            for i in range(SUBMISSIONS):
                kind, nb = kinds[i % len(kinds)]
                path = root / f"s{i:03d}-{kind}.ipynb"
                nbformat.write(nb, str(path))
                students.append((path.stem, path))

        out = base / "results"
        started = time.perf_counter()
        summary = run_batch(root, out, jobs=JOBS, assignments=[assignment], seeds=Seeds.for_credit(), progress=False)
        t_batch = time.perf_counter() - started
        per_batch = t_batch / SUBMISSIONS
        scores = {s: json.loads((out / f"{s}.json").read_text())["score"] for s, _ in students
                  if (out / f"{s}.json").exists()}
        form = "notebooks" if course is not None else "folders"
        print(f"grade-all --jobs {JOBS}: {SUBMISSIONS} {assignment} submissions ({form}, public + hidden cases) "
              f"in {t_batch:.1f} s: {per_batch:.3f} s per submission "
              f"({summary.graded} graded, {len(summary.not_graded)} not graded; {os.cpu_count()} cores)")
        if course is None:
            print(f"nbgrader autograde: SKIPPED, {skipped}; no ratio")
            return

        from autograder import nbgrader_tools as nbt
        chosen = students[:NBGRADER_SUBMISSIONS]
        for student, path in chosen:
            nbt.submit(course, assignment, student, nbformat.read(str(path), as_version=4))
        started = time.perf_counter()
        nbt.run_nbgrader(["autograde", assignment], course)
        t_nb = time.perf_counter() - started
        per_nb = t_nb / len(chosen)
        book = nbt.gradebook_scores(course, assignment)
        agree = all(abs(sum(book.get(s, {}).values()) - scores.get(s, -1)) < 0.01 for s, _ in chosen)
        ratio = per_nb / per_batch
        print(f"nbgrader autograde: {len(chosen)} of the same submissions in {t_nb:.1f} s: "
              f"{per_nb:.3f} s per submission")
        print(f"ratio (nbgrader s/submission / grade-all s/submission): {ratio:.1f}x "
              f"(goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'}); "
              f"same total per submission in both: {agree}")
        (plain, huge), (n_exercises, cases) = fork_cost(), exercises_per_submission(assignment)
        print(f"where grade-all's time goes: {n_exercises} exercises ({cases} cases) per submission, each exercise "
              f"in one child forked from the torch-loaded server; a fork costs {huge * 1000:.1f} ms with the "
              f"worker's huge pages ({plain * 1000:.1f} ms without), so forking is "
              f"{n_exercises * huge / JOBS * 1000:.0f} ms per submission on {JOBS} jobs")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
