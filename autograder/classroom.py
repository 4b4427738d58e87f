"""GitHub Classroom: the runner result the autograding-grading-reporter reads, and the workflow's helpers.

The reporter (classroom-resources/autograding-grading-reporter) computes a runner's points twice:
- "Points x/y", sent to Classroom: the sum of `tests[].score` over runners, out of the sum of `max_score`;
- its table's "Test Score": (tests with status `pass` / number of tests) x `max_score`, per runner.
The two agree only when every test is worth the same and a test passes exactly when it earns its worth.
So a check is reported as equal units: one test per unit of points, a unit being the largest value that
divides every check's maximum and earned points (exact fractions); a check worth 2 units with 1 earned
is two tests, one passing. Both readings then give the recorded points. Where that would take more than
MAX_TESTS tests, the unit is max_score / MAX_TESTS and earned units are rounded to the nearest (the table
is then within half a unit per check of the points).

The runner's `status` is `pass` whenever grading ran: the reporter fails the job on `fail`, and a
student's wrong answer is a score, not a broken build. A submission that cannot be graded is `error`.

    python -m autograder.classroom detect REPO     # lines for $GITHUB_OUTPUT: which assignments to grade
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

MAX_TESTS = 400          # tests per runner (the reporter prints a line per test)
SCORE_DECIMALS = 6
ASSIGNMENTS_ENV = "AUTOGRADER_ASSIGNMENTS"   # names the repository's assignments (space or comma separated)


def _gcd(a: Fraction, b: Fraction) -> Fraction:
    if a == 0:
        return b
    if b == 0:
        return a
    return Fraction(math.gcd(a.numerator, b.numerator), math.lcm(a.denominator, b.denominator))


def unit_of(values, max_score: Fraction) -> Fraction:
    """The largest unit every value is a whole number of (capped so the total is at most MAX_TESTS units)."""
    unit = Fraction(0)
    for v in values:
        unit = _gcd(unit, Fraction(v))
    if unit == 0 or max_score / unit > MAX_TESTS:
        unit = Fraction(max_score) / MAX_TESTS if max_score else Fraction(1)
    return unit


def runner_result(result) -> dict:
    """A runner's result (version 1) whose reporter table and Classroom points both equal `result`'s points."""
    from .formats import _log_line, apportion, check_note, fmt
    from .result import exact
    tests = []
    if result.error:
        tests.append({"name": "submission", "status": "error", "score": 0, "message": _log_line(result.error),
                      "test_code": "", "filename": "", "line_no": 0, "duration": 0})
    checks = [(ex, check) for ex in result.exercises for check in ex.checks]
    unit = unit_of([exact(c.max_points) for _, c in checks] + [exact(c.points) for _, c in checks],
                   exact(result.max_score))
    units = []  # (exercise, check, index, of, passed)
    for ex, check in checks:
        of = max(1, round(exact(check.max_points) / unit)) if exact(check.max_points) > 0 else 0
        earned = min(of, round(max(Fraction(0), exact(check.points)) / unit))
        units += [(ex, check, i, of, i <= earned) for i in range(1, of + 1)]
    scores = apportion([unit if passed else 0 for *_, passed in units], SCORE_DECIMALS)
    for (ex, check, i, of, passed), score in zip(units, scores):
        note = check_note(check)
        name = f"{ex.id}: {check.name}" + (f" (point unit {i}/{of})" if of > 1 else "")
        message = f"{fmt(check.points)}/{fmt(check.max_points)} points" + (f": {note}" if note else "")
        tests.append({"name": _log_line(name), "status": "pass" if passed else "fail", "score": score,
                      "message": _log_line(message), "test_code": "", "filename": ex.id.split(".")[0],
                      "line_no": 0, "duration": 0})
    return {"version": 1, "status": "error" if result.error else "pass",
            "max_score": float(round(exact(result.max_score), SCORE_DECIMALS)), "tests": tests}


def reporter_table_score(results: dict) -> float:
    """The reporter's table, as its aggregate-results.js computes it: passed / tests x max_score."""
    tests = results["tests"]
    passed = sum(1 for t in tests if t["status"] == "pass")
    return passed / len(tests) * (results["max_score"] or 1) if tests else float("nan")


def detect(repo: Path, named: str = "") -> list[str]:
    """The assignments the repository holds (their files present), or those it names."""
    from .assignments import NAMES, detect as found
    if named.strip():
        chosen = [n for n in named.replace(",", " ").split() if n]
        unknown = [n for n in chosen if n not in NAMES]
        if unknown:
            raise ValueError(f"{ASSIGNMENTS_ENV} names {', '.join(unknown)}: the assignments are {', '.join(NAMES)}")
        return list(dict.fromkeys(chosen))
    return found(Path(repo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.classroom")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detect", help="print `assignments=` and `runners=` lines for $GITHUB_OUTPUT")
    p.add_argument("repo")
    args = parser.parse_args(argv)
    try:
        names = detect(Path(args.repo), os.environ.get(ASSIGNMENTS_ENV, ""))
    except ValueError as exc:
        print(f"::error::{exc}", file=sys.stderr)
        return 1
    if not names:
        print("::error::no assignment files found in the repository (e.g. graphs.py, backprop_ninja.py, "
              f"micrograd/engine.py); or name them in the workflow's {ASSIGNMENTS_ENV}", file=sys.stderr)
        return 1
    # Spaces around every name: the workflow tests `contains(..., ' graphs ')`.
    print(f"assignments= {' '.join(names)} ")
    print(f"runners={','.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
