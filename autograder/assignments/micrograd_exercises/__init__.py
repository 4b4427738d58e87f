"""micrograd_exercises: the exercise notebook that ends the micrograd lecture, graded against PyTorch.

Exercises (ids `micrograd_exercises.<entry>`, the student's file `micrograd_exercises.py`, torch blocked):
  gradf            section 1: the analytic gradient of f(a, b, c) = -a**3 + sin(3*b) - 1.0/c + b**2.5 - a**0.5
  numerical_grad   section 1: the gradient estimated with a difference quotient (the student's step h),
                   for the lecture's f and for another f (it must not be the analytic gradient in disguise)
  numerical_grad2  section 1: the symmetric (central) difference at a GIVEN step h
  Value            section 2: the operations softmax and its loss need (exp, log, **, *, /, -, a - b,
                   c + a), each alone: forward value and backward at an upstream gradient other than 1
  softmax, nll     section 2: softmax over Value logits and the negative log likelihood, backpropagated

Layout as the other assignments: `student_side.py` (drivers, in the student's process), `cases.py` (cases
and truths), `mistakes.py` (the catalogue), this file (judges and `EXERCISES`).

Cascade-free: each op is measured alone with the driver's own graph walk; softmax and nll are also run
with the notebook's own code on the student's `Value` (the notebook gives softmax's code), and an answer
equal to that while the operations are wrong is "correct; depends on the Value operations, which are
wrong". nll is run on probabilities made by the notebook's softmax, so a wrong softmax costs nll nothing.
"""
from __future__ import annotations

COURSE_POSITION = 4  # where the course takes it up: the order front ends list the assignments in

import functools

import torch

from autograder.core.compare import APPROX, WRONG, Comparison, Tolerance, compare
from autograder.core.diagnose import close
from autograder.core.exercise import Case, Exercise

from autograder.assignments.micrograd import judge as micrograd_judge
from autograder.assignments.micrograd_exercises.cases import (central_truth, gradient_truth, logits_cases, nll_truth, ops_cases, ops_truth, point_cases,
                    softmax_truth)
from autograder.assignments.micrograd_exercises.mistakes import GRADF_MISTAKES, NLL_MISTAKES, NUMERICAL2_MISTAKES, NUMERICAL_MISTAKES, OPS_MISTAKES, SOFTMAX_MISTAKES

MODULE = "micrograd_exercises"
NO_TORCH = "these exercises are done with Python floats and `math`; PyTorch is only the grader's reference"

# The notebook's own check: abs(yours - ans) < 1e-5. A forward difference at its h = 1e-6 is within it at
# every point of the cases' domain (the largest |f''| there is 18: an error of 9e-6).
NUMERICAL_TOLERANCE = Tolerance(rtol=1e-6, atol=1e-5)
# The symmetric quotient at a given h, computed in another order: rounding of f (|f| < 40) over 2h >= 2e-3.
QUOTIENT_TOLERANCE = Tolerance(rtol=1e-8, atol=1e-9)
# Analytic answers (and the engine's) differ from autograd's by rounding only.
ANALYTIC_TOLERANCE = Tolerance(rtol=1e-7, atol=1e-9)


HIDDEN_FAILURES = {"error": "raised an exception (details withheld for hidden cases)",
                   "timeout": "did not finish in time (an endless loop?)",
                   "wrong": "returned something that is not a number (details withheld for hidden cases)"}


def judge_with(tolerance: Tolerance):
    def judge(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
        results = []
        for name, expected in truth.items():
            got = outputs.get(name) if isinstance(outputs, dict) else None
            if isinstance(got, dict) and "failure" in got:
                if case.hidden:  # a closed vocabulary: nothing the student's process chose (names, lines)
                    kind = got.get("failure") if got.get("failure") in HIDDEN_FAILURES else "error"
                    got = {"failure": kind, "message": HIDDEN_FAILURES[kind], "short": HIDDEN_FAILURES[kind]}
                results.extend(micrograd_judge(case, {name: got}, {name: expected}))
            else:
                results.append(compare(name, got, expected, tolerance=tolerance, scale=1.0))
        return results
    return judge


def judge_lecture_code(what: str):
    """softmax / nll: globally against PyTorch; where wrong, the student's answer against the notebook's code
    run on the student's own Value (`_lecture`). Informative only where that differs from the truth (the
    operations are wrong): then an answer equal to it is right code on a wrong engine."""
    base = judge_with(ANALYTIC_TOLERANCE)

    def judge(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
        results = base(case, outputs, truth)
        lecture = outputs.get("_lecture") if isinstance(outputs, dict) else None
        if not isinstance(lecture, dict):
            return results
        mine = {"probs": lecture.get("data"), "loss": (lecture.get("data") or [None])[0],
                "dlogits": lecture.get("grad")}
        for c in results:
            if c.passed or c.verdict != WRONG:
                continue
            try:
                ref = torch.as_tensor(mine[c.name], dtype=torch.float64).reshape(truth[c.name].shape)
            except Exception:  # noqa: malformed parts from the student's process cost the local verdict only
                continue
            informative = not close(ref, truth[c.name], ANALYTIC_TOLERANCE)
            if informative and close(outputs.get(c.name), ref, ANALYTIC_TOLERANCE):
                c.local_verdict = APPROX
                c.message = f"correct {what}; depends on the Value operations, which are wrong (the Value " \
                            f"exercise names them)"
            else:
                c.local_verdict = WRONG
        return results
    return judge


def exercise(entry: str, points: float, cases, driver: str, truth, title: str, **kw) -> Exercise:
    exercise_id = f"{MODULE}.{entry}"
    return Exercise(id=exercise_id, module=MODULE, entry=entry, points=points,
                    cases=functools.partial(cases, exercise_id=exercise_id),
                    driver=f"{__name__}.student_side:{driver}", truth=truth, title=title,
                    blocked_imports=("torch",), blocked_why=NO_TORCH, time_limit=10.0, **kw)


EXERCISES = [
    exercise("gradf", 3.0, point_cases(with_f=False, with_h=False), "run_gradf", gradient_truth,
             "section 1: the analytic gradient of f", judge=judge_with(ANALYTIC_TOLERANCE), mistakes=GRADF_MISTAKES),
    exercise("numerical_grad", 2.0, point_cases(with_f=True, with_h=False), "run_numerical_grad", gradient_truth,
             "section 1: the gradient, estimated numerically", judge=judge_with(NUMERICAL_TOLERANCE),
             mistakes=NUMERICAL_MISTAKES),
    exercise("numerical_grad2", 2.0, point_cases(with_f=True, with_h=True), "run_numerical_grad2", central_truth,
             "section 1: the symmetric derivative", judge=judge_with(QUOTIENT_TOLERANCE),
             mistakes=NUMERICAL2_MISTAKES),
    exercise("Value", 4.0, ops_cases, "run_ops", ops_truth, "section 2: the Value operations softmax needs",
             judge=judge_with(ANALYTIC_TOLERANCE), mistakes=OPS_MISTAKES),
    exercise("softmax", 2.0, logits_cases(with_label=False), "run_softmax", softmax_truth,
             "section 2: softmax", judge=judge_lecture_code("softmax"), mistakes=SOFTMAX_MISTAKES),
    exercise("nll", 2.0, logits_cases(with_label=True), "run_nll", nll_truth,
             "section 2: the negative log likelihood", judge=judge_lecture_code("loss"), mistakes=NLL_MISTAKES),
]
