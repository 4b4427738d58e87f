"""Every PyTorch truth the grader relies on, validated numerically and independently of PyTorch.

A grader whose truth is wrong grades everyone wrong. For each registered assignment, each exercise's
public cases are built, `exercise.truth(case)` is computed (PyTorch autograd, as in grading), and each
truth gradient is compared by `autograder.gradcheck` with float64 centred differences of a forward
function written here again in numpy / plain Python: a second, independent implementation of the
forward pass, and no autograd at all on the numeric side. Large tensors are probed on sampled elements
(CS231n's `grad_check_sparse`).
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder.assignments import NAMES, exercises
from autograder.exercise import Seeds
from autograder.gradcheck import gradcheck

PUBLIC = Seeds(hidden=False)


def np64(value) -> np.ndarray:
    """A case input or a truth as a float64 numpy array (tensors of any float dtype, lists, floats)."""
    if hasattr(value, "detach"):
        return value.detach().double().numpy()
    return np.asarray(value, dtype=np.float64)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def check(f, inputs, truths, upstream=None, samples=None, what=""):
    """gradcheck f at inputs against the truths (one per input); fail with gradcheck's own report."""
    result = gradcheck(f, *inputs, analytic=truths, upstream=upstream, samples=samples)
    assert result.ok, f"{what}: {result}"
    return result


# -- graphs ---------------------------------------------------------------------------------------------------

def graphs_checks(exercise_id, case, truth):
    """(what, f, inputs, upstream, truths) for each truth of a graphs case, forward in numpy."""
    i = case.inputs
    if exercise_id in ("graphs.AddGate", "graphs.MultiplyGate", "graphs.MaxGate"):
        op = {"graphs.AddGate": np.add, "graphs.MultiplyGate": np.multiply, "graphs.MaxGate": np.maximum}[exercise_id]
        yield "dx, dy", lambda x, y: op(x, y), [np64(i["x"]), np64(i["y"])], np64(i["dout"]), [truth["dx"], truth["dy"]]
        if "tie" in truth:  # both inputs at the same value: the centred difference is the even split
            yield "tie", lambda x, y: op(x, y), [np64(i["tie"]), np64(i["tie"])], np64(i["tie_dout"]), \
                [truth["tie"][:, 0], truth["tie"][:, 1]]
    elif exercise_id == "graphs.SigmoidGate":
        yield "dx", sigmoid, [np64(i["x"])], np64(i["dout"]), [truth["dx"]]
    elif exercise_id == "graphs.simple_graph":
        yield "dx, dy, dz", lambda x, y, z: np.sum((x + y) * z), [np64(i[k]) for k in "xyz"], None, \
            [truth["dx"], truth["dy"], truth["dz"]]
    elif exercise_id == "graphs.sigmoid_neuron":
        yield "dw, dx", lambda w, x: np.sum(sigmoid(w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2])), \
            [np64(i["w"]), np64(i["x"])], None, [truth["dw"], truth["dx"]]
    elif exercise_id == "graphs.l2_of_matvec":
        yield "dW, dx", lambda W, x: float(np.sum((W @ x) ** 2)), [np64(i["W"]), np64(i["x"])], None, \
            [truth["dW"], truth["dx"]]
    else:
        raise AssertionError(f"{exercise_id}: no independent forward written for this exercise's truth")


@pytest.mark.parametrize("exercise", exercises("graphs"), ids=lambda ex: ex.id)
def test_graphs_truths(exercise):
    for case in exercise.cases(PUBLIC):
        truth = exercise.truth(case)
        covered = set()
        for what, f, inputs, upstream, truths in graphs_checks(exercise.id, case, truth):
            check(f, inputs, truths, upstream=upstream, what=f"{exercise.id} {case.id} {what}")
            covered |= {name.strip() for name in what.split(",")}
        assert covered == set(truth), f"{exercise.id}: truths not validated: {set(truth) - covered}"


def test_a_wrong_truth_would_be_caught():
    """The validation has teeth: the l2 truth with one element off by 0.1% fails it, at that element."""
    exercise = next(ex for ex in exercises("graphs") if ex.id == "graphs.l2_of_matvec")
    case = exercise.cases(PUBLIC)[2]
    truth = exercise.truth(case)
    dW = truth["dW"].clone()
    dW[1, 0] *= 1.001
    (what, f, inputs, upstream, _), = graphs_checks(exercise.id, case, truth)
    result = gradcheck(f, *inputs, analytic=[dW, truth["dx"]])
    assert not result.ok and (result.worst_input, result.worst_index) == ("input 0 (W)", (1, 0))


def test_every_assignment_is_covered():
    """A new assignment must bring its truth validation here."""
    assert set(NAMES) == {"micrograd", "graphs", "backprop_ninja"}
