"""nbgrader autograde (one notebook at a time) vs `autograder nbgrader-autograde --jobs 2` on the same
20 submissions of the graphs notebook, each in its own copy of one course; prints both times, the
ratio, and whether the two gradebooks hold the same scores."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

ASSIGNMENT = "graphs"
SUBMISSIONS = int(os.environ.get("BENCH_NBGRADER_SUBMISSIONS", "20"))
JOBS = 2


def main() -> None:
    from autograder import nbgrader_tools as nbt
    base = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    try:
        serial, parallel = base / "serial", base / "parallel"
        nbt.make_course(serial, [ASSIGNMENT])
        kinds = list(nbt.demo_submissions(serial, ASSIGNMENT).items())  # reference, template, one-mistake
        for i in range(SUBMISSIONS):
            kind, nb = kinds[i % len(kinds)]
            nbt.submit(serial, ASSIGNMENT, f"s{i:02d}-{kind}", nb)
        shutil.copytree(serial, parallel)

        started = time.perf_counter()
        nbt.run_nbgrader(["autograde", ASSIGNMENT], serial)
        t_serial = time.perf_counter() - started
        report = nbt.parallel_autograde(parallel, ASSIGNMENT, jobs=JOBS)
        t_parallel = report["seconds"]

        same = nbt.gradebook_scores(serial, ASSIGNMENT) == nbt.gradebook_scores(parallel, ASSIGNMENT)
        print(f"{SUBMISSIONS} submissions of {ASSIGNMENT} ({os.cpu_count()} cores)")
        print(f"nbgrader autograde                      {t_serial:7.1f} s  ({t_serial / SUBMISSIONS:.2f} s/notebook)")
        print(f"autograder nbgrader-autograde --jobs {JOBS}  {t_parallel:7.1f} s  "
              f"({t_parallel / SUBMISSIONS:.2f} s/notebook)")
        print(f"speed-up: {t_serial / t_parallel:.2f}x; same gradebook scores: {same}; "
              f"failed groups: {len(report['failed'])}, retried: {len(report['retried'])}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
