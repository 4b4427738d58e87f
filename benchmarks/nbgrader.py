"""Seconds per notebook, on the same submissions of the graphs notebook, in one run, of:
- plain `nbgrader autograde` with the course config: the kernel runs the notebook (feedback) and our
  preprocessor grades its code outside the kernel (the gradebook's scores);
- plain `nbgrader autograde` without our preprocessor: nbgrader's own cost (the kernel's run; grade
  cells then score 0), the floor our grading is added to;
- `autograder nbgrader-autograde --jobs 2`: the course config, two nbgrader processes.
Each in its own copy of one course. BENCH_NBGRADER_SUBMISSIONS sets the count (default 20)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

ASSIGNMENT = "graphs"
SUBMISSIONS = int(os.environ.get("BENCH_NBGRADER_SUBMISSIONS", "20"))
JOBS = 2
WITHOUT_PREPROCESSOR = """
# (benchmark) nbgrader's own autograde pipeline, without GradeOutsideKernel
from nbgrader.converters import Autograde as _Autograde
c.Autograde.autograde_preprocessors = list(_Autograde.class_traits()["autograde_preprocessors"].default())
"""


def main() -> None:
    from autograder.integrations.nbgrader import tools as nbt
    env = {"AUTOGRADER_SECRET": os.environ.get("AUTOGRADER_SECRET") or "bench-secret"}
    base = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    try:
        ours, bare, parallel = base / "ours", base / "bare", base / "parallel"
        nbt.make_course(ours, [ASSIGNMENT])
        kinds = list(nbt.demo_submissions(ours, ASSIGNMENT).items())  # reference, template, one-mistake
        for i in range(SUBMISSIONS):
            kind, nb = kinds[i % len(kinds)]
            nbt.submit(ours, ASSIGNMENT, f"s{i:02d}-{kind}", nb)
        shutil.copytree(ours, bare)
        shutil.copytree(ours, parallel)
        with open(bare / "nbgrader_config.py", "a") as config:
            config.write(WITHOUT_PREPROCESSOR)

        times = {}
        for name, course in (("ours", ours), ("bare", bare)):
            started = time.perf_counter()
            nbt.run_nbgrader(["autograde", ASSIGNMENT], course, env=env)
            times[name] = time.perf_counter() - started
        report = nbt.parallel_autograde(parallel, ASSIGNMENT, jobs=JOBS, env=env)
        times["parallel"] = report["seconds"]

        scores = nbt.gradebook_scores(ours, ASSIGNMENT)
        same = scores == nbt.gradebook_scores(parallel, ASSIGNMENT)
        earned = sum(sum(cells.values()) for cells in nbt.gradebook_scores(bare, ASSIGNMENT).values())
        n = SUBMISSIONS
        print(f"{n} submissions of {ASSIGNMENT} ({os.cpu_count()} cores), seconds per notebook:")
        print(f"nbgrader autograde, course config (graded outside the kernel)  {times['ours'] / n:6.2f}")
        print(f"nbgrader autograde without our preprocessor                    {times['bare'] / n:6.2f}"
              f"   (grade cells score 0 there: {earned:g} points in its gradebook)")
        print(f"autograder nbgrader-autograde --jobs {JOBS}                        {times['parallel'] / n:6.2f}")
        print(f"grading outside the kernel adds {(times['ours'] - times['bare']) / n:.2f} s per notebook; "
              f"--jobs {JOBS} speed-up {times['ours'] / times['parallel']:.2f}x; same gradebook scores: {same}; "
              f"failed groups: {len(report['failed'])}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
