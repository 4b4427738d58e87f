"""The Classroom reporter's two readings of a runner result (the points it sends, its table's Test Score)
equal the recorded points, for any mix of partial points (the workflow itself: test_ci_workflow.py)."""
import random
from fractions import Fraction

from types import SimpleNamespace

from autograder.integrations.classroom import MAX_EXACT, reporter_table_score, runner_result, units_per_check


def _result(rng, exercises=6, checks=5):
    """A result's shape as runner_result reads it, with points of any denominators."""
    out = []
    for e in range(exercises):
        cs = []
        for c in range(checks):
            top = Fraction(rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 3, 4, 5, 7]))
            got = top * Fraction(rng.randint(0, 6), 6) if rng.random() < 0.6 else rng.choice([Fraction(0), top])
            cs.append(SimpleNamespace(name=f"c{c}", points=got, max_points=top, correct=got == top, passed=got == top,
                                      case_label="public case 1", status="failed", mistake=None, hint="",
                                      message="", verdict="wrong"))
        out.append(SimpleNamespace(id=f"x.e{e}", checks=cs))
    score = sum((c.points for e in out for c in e.checks), Fraction(0))
    top = sum((c.max_points for e in out for c in e.checks), Fraction(0))
    return SimpleNamespace(exercises=out, error=None, score=score, max_score=top)


def test_units_give_exactly_the_points_share():
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randint(1, 30)
        maxima = [Fraction(rng.randint(1, 12), rng.randint(1, 9)) for _ in range(n)]
        points = [m * Fraction(rng.randint(0, 7), 7) for m in maxima]
        of, earned = units_per_check(maxima, points, sum(maxima), sum(points))
        assert sum(of) > 0 and all(0 <= k <= u for k, u in zip(earned, of))
        if sum(of) < MAX_EXACT:
            assert Fraction(sum(earned), sum(of)) == sum(points) / sum(maxima)
        else:
            assert abs(Fraction(sum(earned), sum(of)) - sum(points) / sum(maxima)) <= Fraction(1, MAX_EXACT)


def test_reporter_readings_equal_the_recorded_points():
    rng = random.Random(11)
    exact_seen = False
    for _ in range(40):
        result = _result(rng)
        data = runner_result(result)
        assert data["status"] == "pass"  # a wrong answer does not fail the job
        assert len(data["tests"]) <= MAX_EXACT
        total = 0.0
        for test in data["tests"]:  # the reporter's running sum, in doubles
            total += test["score"]
        assert total == round(float(result.score), 6)  # exactly: no 11.999999999999998
        exact = len(data["tests"]) < MAX_EXACT
        assert abs(reporter_table_score(data) - float(result.score)) <= (1e-6 if exact else float(result.max_score) / MAX_EXACT)  # max_score is sent to 6 decimals
        if exact:
            exact_seen = True
    assert exact_seen
