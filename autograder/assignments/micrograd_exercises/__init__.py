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
and truths), `judges.py`, `mistakes.py` (the catalogue), `pictures.py` (what the HTML report draws) and
this file (`EXERCISES`, each with its tolerance).

Cascade-free: each op is measured alone with the driver's own graph walk; softmax and nll are also run
with the notebook's own code on the student's `Value` (the notebook gives softmax's code), and an answer
equal to that while the operations are wrong is "correct; depends on the Value operations, which are
wrong". nll is run on probabilities made by the notebook's softmax, so a wrong softmax costs nll nothing.
"""
from __future__ import annotations

import functools

from autograder.core.exercise import Exercise, Tolerance
from autograder.assignments.micrograd_exercises.judges import judge_lecture_code, judge_numbers
from autograder.assignments.micrograd_exercises.cases import (central_truth, gradient_truth, logits_cases, nll_truth, ops_cases, ops_truth, point_cases,
                    softmax_truth)
from autograder.assignments.micrograd_exercises.mistakes import GRADF_MISTAKES, NLL_MISTAKES, NUMERICAL2_MISTAKES, NUMERICAL_MISTAKES, OPS_MISTAKES, SOFTMAX_MISTAKES

COURSE_POSITION = 4  # where the course takes it up: the order front ends list the assignments in

MODULE = "micrograd_exercises"
NO_TORCH = "these exercises are done with Python floats and `math`; PyTorch is only the grader's reference"

# The notebook's own check: abs(yours - ans) < 1e-5. A forward difference at its h = 1e-6 is within it at
# every point of the cases' domain (the largest |f''| there is 18: an error of 9e-6).
NUMERICAL_TOLERANCE = Tolerance(rtol=1e-6, atol=1e-5)
# The symmetric quotient at a given h, computed in another order: rounding of f (|f| < 40) over 2h >= 2e-3.
QUOTIENT_TOLERANCE = Tolerance(rtol=1e-8, atol=1e-9)
# Analytic answers (and the engine's) differ from autograd's by rounding only.
ANALYTIC_TOLERANCE = Tolerance(rtol=1e-7, atol=1e-9)


def exercise(entry: str, points: float, cases, driver: str, truth, title: str, **kw) -> Exercise:
    exercise_id = f"{MODULE}.{entry}"
    return Exercise(id=exercise_id, module=MODULE, entry=entry, points=points,
                    cases=functools.partial(cases, exercise_id=exercise_id),
                    driver=f"{__name__}.student_side:{driver}", truth=truth, title=title,
                    blocked_imports=("torch",), blocked_why=NO_TORCH, time_limit=10.0, **kw)


EXERCISES = [
    exercise("gradf", 3.0, point_cases(with_f=False, with_h=False), "run_gradf", gradient_truth,
             "section 1: the analytic gradient of f", judge=judge_numbers, tolerance=ANALYTIC_TOLERANCE,
             mistakes=GRADF_MISTAKES),
    exercise("numerical_grad", 2.0, point_cases(with_f=True, with_h=False), "run_numerical_grad", gradient_truth,
             "section 1: the gradient, estimated numerically", judge=judge_numbers, tolerance=NUMERICAL_TOLERANCE,
             mistakes=NUMERICAL_MISTAKES),
    exercise("numerical_grad2", 2.0, point_cases(with_f=True, with_h=True), "run_numerical_grad2", central_truth,
             "section 1: the symmetric derivative", judge=judge_numbers, tolerance=QUOTIENT_TOLERANCE,
             mistakes=NUMERICAL2_MISTAKES),
    exercise("Value", 4.0, ops_cases, "run_ops", ops_truth, "section 2: the Value operations softmax needs",
             judge=judge_numbers, tolerance=ANALYTIC_TOLERANCE, mistakes=OPS_MISTAKES),
    exercise("softmax", 2.0, logits_cases(with_label=False), "run_softmax", softmax_truth,
             "section 2: softmax", judge=judge_lecture_code("softmax"), tolerance=ANALYTIC_TOLERANCE,
             mistakes=SOFTMAX_MISTAKES),
    exercise("nll", 2.0, logits_cases(with_label=True), "run_nll", nll_truth,
             "section 2: the negative log likelihood", judge=judge_lecture_code("loss"), tolerance=ANALYTIC_TOLERANCE,
             mistakes=NLL_MISTAKES),
]
