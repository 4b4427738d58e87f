"""GitHub Classroom: the runner result the autograding-grading-reporter reads, and the workflow's helpers.

The reporter (classroom-resources/autograding-grading-reporter) computes a runner's points twice:
- "Points x/y", sent to Classroom: the sum of `tests[].score` over runners, out of the sum of `max_score`;
- its table's "Test Score": (tests with status `pass` / number of tests) x `max_score`, per runner.
The two agree only when every test is worth the same and a test passes exactly when it earns its worth.
So a check is reported as equal units: one test per unit of points, a unit being the largest value that
divides every check's maximum and earned points (exact fractions); a check worth 2 units with 1 earned
is two tests, one passing. Both readings then give the recorded points. Where that would take more than
MAX_TESTS tests, the number of tests is a multiple of the denominator of score / max_score (so the
passing share is still exactly the points' share) and each check gets the whole units nearest its
points: the totals are exact, a single check's units within one unit of its points. Where even that
would take more than MAX_EXACT tests, there are MAX_EXACT: the points sent stay exact, the table is
within max_score / MAX_EXACT of them.

The runner's `status` is `pass` whenever grading ran: the reporter fails the job on `fail`, and a
student's wrong answer is a score, not a broken build. A submission that cannot be graded is `error`.

    python -m autograder.integrations.classroom detect REPO     # lines for $GITHUB_OUTPUT: which assignments to grade
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

MAX_TESTS = 400          # tests per runner for one unit per share of points (the reporter prints a line per test)
MAX_EXACT = 1000         # tests per runner at most: beyond, the table's share is within 1/MAX_EXACT of the points
SCORE_DECIMALS = 6
ASSIGNMENTS_ENV = "AUTOGRADER_ASSIGNMENTS"   # names the repository's assignments (space or comma separated)


def _gcd(a: Fraction, b: Fraction) -> Fraction:
    if a == 0:
        return b
    if b == 0:
        return a
    return Fraction(math.gcd(a.numerator, b.numerator), math.lcm(a.denominator, b.denominator))


def unit_of(values, max_score: Fraction) -> Fraction | None:
    """The largest unit every value is a whole number of, or None when the maximum would take more than
    MAX_TESTS of them."""
    unit = Fraction(0)
    for v in values:
        unit = _gcd(unit, Fraction(v))
    if unit == 0 or max_score / unit > MAX_TESTS:
        return None
    return unit


def _largest_remainder(shares: list[Fraction], total: int) -> list[int]:
    """Integers near `shares` that add up to `total` (shares add up to `total`)."""
    floors = [math.floor(x) for x in shares]
    order = sorted(range(len(shares)), key=lambda i: shares[i] - floors[i], reverse=True)
    for i in order[:total - sum(floors)]:
        floors[i] += 1
    return floors


def units_per_check(maxima: list[Fraction], points: list[Fraction], max_score: Fraction,
                    score: Fraction) -> tuple[list[int], list[int]]:
    """(units, earned units) per check such that earned / units over all checks is exactly score /
    max_score. Each check's share is exact when one unit divides every value within MAX_TESTS units;
    else there are T units in all (a multiple of the denominator of score / max_score), spread over the
    checks as near their points as whole units allow."""
    unit = unit_of(maxima + points, max_score)
    if unit is not None:
        return [int(m / unit) for m in maxima], [int(p / unit) for p in points]
    ratio = Fraction(score) / Fraction(max_score) if max_score else Fraction(0)
    q = ratio.denominator
    total = q * max(1, MAX_TESTS // q) if q <= MAX_EXACT else MAX_EXACT
    passed = round(ratio * total)
    of = _largest_remainder([m * total / max_score for m in maxima], total)
    earned = _largest_remainder([p * total / max_score for p in points], passed) if passed else [0] * len(points)
    # Rounding may give a check one earned unit more than it has: move it to a check with room.
    for i in range(len(of)):
        while earned[i] > of[i]:
            j = next(j for j in range(len(of)) if earned[j] < of[j])
            earned[i] -= 1
            earned[j] += 1
    return of, earned


def runner_result(result) -> dict:
    """A runner's result (version 1) whose reporter table and Classroom points both equal `result`'s points."""
    from autograder.frontends.formats import _log_line, check_note, fmt
    from autograder.core.result import exact
    tests = []
    if result.error:
        tests.append({"name": "submission", "status": "error", "score": 0, "message": _log_line(result.error),
                      "test_code": "", "filename": "", "line_no": 0, "duration": 0})
    checks = [(ex, check) for ex in result.exercises for check in ex.checks]
    maxima = [exact(c.max_points) for _, c in checks]
    points = [min(max(Fraction(0), exact(c.points)), exact(c.max_points)) for _, c in checks]
    of, earned = units_per_check(maxima, points, exact(result.max_score), sum(points, Fraction(0)))
    total = sum(of)
    units = []  # (exercise, check, index, of, passed)
    for (ex, check), n, k in zip(checks, of, earned):
        units += [(ex, check, i, n, i <= k) for i in range(1, n + 1)]
    # The passing tests share the points equally (each is then worth max_score / units, but where the
    # units are rounded), as floats whose running sum (the reporter's, in JavaScript doubles) lands on
    # the points rounded to 6 decimals.
    passing = sum(1 for *_, passed in units if passed)
    worth = sum(points, Fraction(0)) / passing if passing else Fraction(0)
    scores = running_sum_scores([worth if passed else Fraction(0) for *_, passed in units])
    for (ex, check, i, n, passed), score in zip(units, scores):
        note = check_note(check)
        name = f"{ex.id}: {check.name}" + (f" (point unit {i}/{n})" if n > 1 else "")
        message = f"{fmt(check.points)}/{fmt(check.max_points)} points" + (f": {note}" if note else "")
        tests.append({"name": _log_line(name), "status": "pass" if passed else "fail", "score": score,
                      "message": _log_line(message), "test_code": "", "filename": ex.id.split(".")[0],
                      "line_no": 0, "duration": 0})
    return {"version": 1, "status": "error" if result.error else "pass",
            "max_score": float(round(exact(result.max_score), SCORE_DECIMALS)), "tests": tests}


def running_sum_scores(values: list[Fraction]) -> list[float]:
    """Floats whose sum, added left to right in doubles (the reporter's `acc += score`), equals each
    prefix's exact sum rounded to SCORE_DECIMALS at every step: a full score adds up to 12, not to
    11.999999999999998."""
    out, acc, exact_sum = [], 0.0, Fraction(0)
    for value in values:
        if value == 0:
            out.append(0.0)
            continue
        exact_sum += value
        target = round(float(round(exact_sum, SCORE_DECIMALS)), SCORE_DECIMALS)
        step = target - acc
        for _ in range(8):  # a few ulps either way reach it when the subtraction rounded
            if acc + step == target:
                break
            step = math.nextafter(step, math.inf if acc + step < target else -math.inf)
        out.append(max(step, 0.0))
        acc += out[-1]
    return out


def reporter_table_score(results: dict) -> float:
    """The reporter's table, as its aggregate-results.js computes it: passed / tests x max_score."""
    tests = results["tests"]
    passed = sum(1 for t in tests if t["status"] == "pass")
    return passed / len(tests) * (results["max_score"] or 1) if tests else float("nan")


def detect(repo: Path, named: str = "") -> list[str]:
    """The assignments the repository holds (their files present), or those it names."""
    from autograder.assignments import NAMES, detect as found
    if named.strip():
        chosen = [n for n in named.replace(",", " ").split() if n]
        unknown = [n for n in chosen if n not in NAMES]
        if unknown:
            raise ValueError(f"{ASSIGNMENTS_ENV} names {', '.join(unknown)}: the assignments are {', '.join(NAMES)}")
        return list(dict.fromkeys(chosen))
    return found(Path(repo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.classroom")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detect", help="print `assignments=` and `runners=` lines for $GITHUB_OUTPUT")
    p.add_argument("repo")
    args = parser.parse_args(argv)
    try:
        from autograder.core.config import Config
        names = detect(Path(args.repo), Config.from_env().classroom_assignments)  # a bad setting: named here
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
