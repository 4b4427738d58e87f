"""An exercise's tolerance has one home (`Exercise.tolerance`): its judge and `diagnose` both use it, so an
answer just inside it is never called wrong (no verdict, no hint) and one just outside is judged wrong, with a
diagnosis that counts the same wrong elements. One representative check per exercise, its first public case,
through the pipeline's own judge-then-diagnose step."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from autograder.assignments import all_exercises
from autograder.core.compare import PASSING, WRONG, as_tensor
from autograder.core.diagnose import describe_error
from autograder.core.exercise import Seeds, ToleranceBound
from autograder.core.pipeline import _judged

EXERCISES = [ex for exs in all_exercises().values() for ex in exs]


def _judge_scale(exercise, case, name: str, expected: torch.Tensor) -> float:
    """The scale the exercise's judge gives the absolute part of its tolerance (compare's default: the largest
    |true|, or 1)."""
    if exercise.assignment == "micrograd_exercises":
        return 1.0  # the notebook's absolute check
    if exercise.id in ("backprop_ninja.manual_backward", "backprop_ninja.forward_backward"):
        from autograder.assignments.backprop_ninja.cases import global_scale
        return global_scale(case.info["forward"], name)
    if exercise.id == "backprop_ninja.batchnorm_backward":
        from autograder.assignments.backprop_ninja.judges import batchnorm_scale
        return batchnorm_scale(case, expected)
    return float(expected.abs().max()) or 1.0


def _representative(truth: dict) -> str:
    """The first check whose truth is a floating tensor with a non-zero element (not the loss of a step)."""
    for name, value in truth.items():
        t = as_tensor(value)
        if t is not None and t.is_floating_point() and t.numel() and bool(t.abs().max() > 0) and name != "loss":
            return name
    raise AssertionError(f"no numeric check in {sorted(truth)}")


def _nudged(expected, delta: float):
    """The truth with its largest element moved by `delta` (same type and dtype)."""
    t = as_tensor(expected).clone()
    flat = t.view(-1)
    k = int(flat.abs().argmax())
    flat[k] += delta
    return t if isinstance(expected, torch.Tensor) else t.tolist()


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.id)
def test_just_inside_is_never_wrong_and_just_outside_is(exercise):
    assert isinstance(exercise.judge, ToleranceBound) and exercise.judge.tolerance is exercise.tolerance, \
        "the judge does not take the exercise's tolerance"
    case = exercise.cases(Seeds(hidden=False))[0]
    truth = exercise.truth(case)
    name = _representative(truth)
    expected = as_tensor(truth[name])
    tol = exercise.tolerance.for_dtype(expected.dtype)
    largest = float(expected.abs().max())
    scale = _judge_scale(exercise, case, name, expected)
    inside = 0.5 * tol.rtol * largest                       # inside whatever the absolute part allows
    outside = 2.0 * (tol.atol * scale + tol.rtol * largest)
    for delta, passes in ((inside, True), (outside, False)):
        outputs = {**truth, name: _nudged(truth[name], delta)}
        check = next(c for c in _judged(exercise, case, SimpleNamespace(outputs=outputs), truth) if c.name == name)
        if passes:
            assert check.verdict in PASSING and not check.mistake and not check.hint, (delta, check)
            assert describe_error(outputs[name], truth[name], False, exercise.tolerance) == ""
        else:
            assert check.verdict == WRONG, (delta, check)
            # the generic diagnosis counts what the judge counted: one element, wrong
            assert describe_error(outputs[name], truth[name], False, exercise.tolerance, check.scale).startswith("1 of "), \
                check


def test_a_replaced_exercise_judges_with_its_new_tolerance():
    """`dataclasses.replace` rebinds the judge to the new tolerance (never the old one, never twice)."""
    import dataclasses

    from autograder.core.exercise import Tolerance
    exercise = next(ex for ex in EXERCISES if ex.id == "graphs.AddGate")
    loose = dataclasses.replace(exercise, tolerance=Tolerance(rtol=0.5, atol=0.5))
    assert loose.judge.tolerance == Tolerance(rtol=0.5, atol=0.5) and loose.judge.judge is exercise.judge.judge
    case = exercise.cases(Seeds(hidden=False))[0]
    truth = exercise.truth(case)
    off = {**truth, "dx": truth["dx"] * 1.1}
    assert not next(c for c in exercise.judge(case, off, truth) if c.name == "dx").passed
    assert next(c for c in loose.judge(case, off, truth) if c.name == "dx").passed
