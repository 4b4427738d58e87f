"""graphs, grader side: the catalogue of known mistakes per exercise. Every matcher is called with the
exercise's tolerance (`diagnose` passes it): a prediction is matched as the judge would match an answer."""
from __future__ import annotations

import functools

import torch

from autograder.core.diagnose import close, scale_mistake, transposed
from autograder.core.exercise import Case, Mistake
from autograder.assignments.graphs.judges import (WIRING_COLUMNS, _FeedOne, _bad_gates, _close, _column, _gate_hint,
                                                  _gate_model, _wire_neuron, _wire_simple)
from autograder.assignments.graphs.student_side import _t


def _local_grad(name: str, check: str, case: Case) -> torch.Tensor | None:
    """The gate's local gradient d(out)/d(input) on the case's inputs, where the mistake needs it."""
    x = _t(case.inputs["x"])
    if name == "SigmoidGate":
        s = torch.sigmoid(x)
        return s * (1 - s)
    y = _t(case.inputs["y"])
    return {("AddGate", "dx"): torch.ones_like(x), ("AddGate", "dy"): torch.ones_like(y),
            ("MultiplyGate", "dx"): y, ("MultiplyGate", "dy"): x,
            ("MaxGate", "dx"): (x > y).double(), ("MaxGate", "dy"): (y > x).double()}.get((name, check))


def _no_upstream(got, exp, case=None, name=None, tolerance=None, **_) -> bool:
    """The local gradient alone: the upstream gradient dout was not multiplied in."""
    local = _local_grad(case.inputs["gate"], name, case)
    return local is not None and _close(got, local, tolerance) and not _close(got, exp, tolerance)


def _not_switched(got, exp, case=None, name=None, tolerance=None, **_) -> bool:
    own = {"dx": "x", "dy": "y"}.get(name)
    return own is not None and _close(got, _t(case.inputs[own]) * _t(case.inputs["dout"]), tolerance)


def _max_misrouted(got, exp, case=None, name=None, tolerance=None, **_) -> bool:
    x, y, dout = (_t(case.inputs[k]) for k in ("x", "y", "dout"))
    to_smaller = {"dx": (x < y).double(), "dy": (y < x).double()}.get(name)
    to_both = dout
    return to_smaller is not None and (_close(got, to_smaller * dout, tolerance) or _close(got, to_both, tolerance))


def _max_tie(got, exp, case=None, tolerance=None, **_) -> bool:
    dout = _t(case.inputs["tie_dout"])
    return _close(got, torch.stack([dout, dout], 1), tolerance)


def _sigmoid_derivative(got, exp, case=None, tolerance=None, **_) -> str | bool:
    x, dout = _t(case.inputs["x"]), _t(case.inputs["dout"])
    s = torch.sigmoid(x)
    for wrong, what in ((s, "s alone"), (1 - s, "(1 - s) alone"), (x * (1 - x), "x * (1 - x) with x the input"),
                        (torch.exp(-x), "exp(-x)"), ((1 + s) * s, "(1 + s) * s: the sign inside is -")):
        if _close(got, wrong * dout, tolerance):
            return f"it looks like {what}"
    return False


NO_UPSTREAM = Mistake("no_upstream", "the chain rule multiplies the local gradient by the upstream gradient "
                                     "dout: backward(dout) must return local * dout", _no_upstream)
GATE_MISTAKES = {
    "AddGate": (NO_UPSTREAM,),
    "MultiplyGate": (Mistake("not_switched", "mul switches: dx is the OTHER input times dout (dx = y * dout, "
                                             "dy = x * dout)", _not_switched), NO_UPSTREAM),
    "MaxGate": (Mistake("max_tie", "on a tie the max gate must route dout to ONE input (either one) or split it; "
                                   "giving all of dout to both inputs doubles the gradient", _max_tie, ("tie",)),
                Mistake("max_route", "max routes: the input that was LARGER gets all of dout, the other gets 0 "
                                     "(compare the cached inputs)", _max_misrouted, ("dx", "dy")),
                NO_UPSTREAM),
    "SigmoidGate": (Mistake("sigmoid_derivative", "the sigmoid's local gradient is (1 - s) * s with s the gate's "
                                                  "OUTPUT (cache it in forward), times dout", _sigmoid_derivative),
                    NO_UPSTREAM),
}



def _upstream_dropped(wire, calls: tuple[str, ...]):
    """A matcher: the answer is the right wiring with one gate fed 1 instead of its upstream gradient."""
    def matches(got, exp, case=None, name=None, context=None, tolerance=None, **_):
        gates = (context or {}).get("outputs", {}).get("_gates")
        model = functools.partial(_gate_model, tolerance=tolerance)
        if _bad_gates(context, tolerance) or not isinstance(gates, list):
            return False
        columns = WIRING_COLUMNS[wire][name]
        for k, call in enumerate(calls):
            rows = [wire(p, _FeedOne(k), model) for p in gates]
            if None not in rows and _close(got, _column(rows, columns, exp.shape), tolerance):
                return f"`{call}` is fed 1.0"
        return False
    return matches


UPSTREAM_DROPPED = "a gate's backward must be fed the gradient that came back to its output (its upstream), " \
                   "not 1.0: only the last gate starts from df/df = 1"


def _simple_not_switched(got, exp, case=None, name=None, context=None, tolerance=None, **_) -> bool:
    if _bad_gates(context, tolerance):  # a wrong gate explains it: the wiring is not to blame
        return False
    x, y, z = (_t(case.inputs[k]) for k in ("x", "y", "z"))
    own = {"dz": z, "dx": x + y, "dy": x + y}.get(name)  # dz = z, or dx = q: mul did not switch
    return own is not None and _close(got, own, tolerance)


def _simple_no_chain(got, exp, case=None, name=None, context=None, tolerance=None, **_) -> bool:
    return not _bad_gates(context, tolerance) and name in ("dx", "dy") and _close(got, torch.ones(len(case.inputs["x"]), dtype=torch.float64), tolerance)


SIMPLE_MISTAKES = (
    Mistake("gate_wrong", "a gate this function uses is wrong (its own exercise names the mistake): fix the gate "
                          "first", lambda got, exp, context=None, tolerance=None, **_: _gate_hint(context, tolerance)),
    Mistake("upstream_dropped", UPSTREAM_DROPPED, _upstream_dropped(_wire_simple, ("add.backward",))),
    Mistake("not_switched", "mul switches: df/dz is the other input q = x + y, and df/dq is z",
            _simple_not_switched),
    Mistake("no_upstream", "add distributes the UPSTREAM gradient: dx = dy = df/dq = z, not the add gate's local "
                           "gradient 1 (chain rule: local * upstream)", _simple_no_chain),
)


def _neuron_parts(case: Case):
    w, x = _t(case.inputs["w"]), _t(case.inputs["x"])
    z = w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2]
    s = torch.sigmoid(z)
    ones = torch.ones(len(z), 1, dtype=torch.float64)
    local = {"dw": torch.cat([x, ones], 1), "dx": w[:, :2]}  # d(z)/d(w), d(z)/d(x)
    return w, x, z, s, local


def _neuron_sigmoid(got, exp, case=None, name=None, context=None, tolerance=None, **_) -> str | bool:
    if _bad_gates(context, tolerance):
        return False
    w, x, z, s, local = _neuron_parts(case)
    for wrong, what in ((s, "s alone"), (1 - s, "(1 - s) alone"), (z * (1 - z), "z * (1 - z) with z the input"),
                        (torch.exp(-z), "exp(-z)"), ((1 + s) * s, "(1 + s) * s: the sign inside is -")):
        if _close(got, local[name] * wrong[:, None], tolerance):
            return f"it looks like {what}"
    return False


def _neuron_not_switched(got, exp, case=None, name=None, context=None, tolerance=None, **_) -> bool:
    if _bad_gates(context, tolerance):
        return False
    w, x, z, s, local = _neuron_parts(case)
    ones = torch.ones(len(z), 1, dtype=torch.float64)
    own = {"dw": torch.cat([w[:, :2], ones], 1), "dx": x}[name]
    return _close(got, own * (s * (1 - s))[:, None], tolerance)


def _neuron_no_upstream(got, exp, case=None, name=None, context=None, tolerance=None, **_) -> bool:
    """The local gradients of the dot product alone (every gate right): the sigmoid's factor never reached them."""
    if _bad_gates(context, tolerance):
        return False
    w, x, z, s, local = _neuron_parts(case)
    return _close(got, local[name], tolerance)


NEURON_MISTAKES = (
    Mistake("gate_wrong", "a gate this function uses is wrong (its own exercise names the mistake): fix the gate "
                          "first", lambda got, exp, context=None, tolerance=None, **_: _gate_hint(context, tolerance)),
    Mistake("upstream_dropped", UPSTREAM_DROPPED, _upstream_dropped(
        _wire_neuron, ("add1.backward", "add0.backward", "mul0.backward", "mul1.backward"))),
    Mistake("no_upstream", "the sigmoid's factor (1 - s) * s = 0.2 at the lecture's point is missing: pass each "
                           "gate's result on as the dout of the gate before it (dz = sig.backward(1.0), then "
                           "add1.backward(dz), add0.backward(ddot), mul0.backward(da), mul1.backward(db))",
            _neuron_no_upstream),
    Mistake("sigmoid_derivative", "d sigmoid(z)/dz = (1 - s) * s with s = sigmoid(z), the output (0.73 * 0.27 = "
                                  "0.2 at the lecture's point)", _neuron_sigmoid),
    Mistake("not_switched", "mul switches: d(w0*x0)/dw0 = x0 and d(w0*x0)/dx0 = w0", _neuron_not_switched),
)


def _half(got, exp, tolerance=None, **_) -> bool:
    """dq = q instead of 2q: only one branch of q * q counted."""
    return close(got, exp / 2, tolerance)


def _dx_untransposed(got, exp, case=None, name=None, tolerance=None, **_) -> bool:
    W, x = case.inputs["W"], case.inputs["x"]
    if name != "dx" or W.shape[0] != W.shape[1]:
        return False
    return close(got, W @ (2 * W @ x), tolerance)


def _shape(got, exp, tolerance=None, **_) -> str | bool:
    g = torch.as_tensor(got) if not isinstance(got, torch.Tensor) else got
    if tuple(g.shape) == tuple(exp.shape):
        return False
    if g.numel() == exp.numel() and close(g.reshape(exp.shape), exp, tolerance):
        return f"the values are right but the shape is {tuple(g.shape)}, not {tuple(exp.shape)}: reshape it"
    return f"shape {tuple(g.shape)}, not {tuple(exp.shape)}"


MATVEC_MISTAKES = (
    Mistake("transposed", "transposed: dW = outer(dq, x) has W's shape (m, n) (dW[i, j] = dq[i] * x[j]), and "
                          "dx = W.T @ dq; the shapes tell you which way round", _dx_untransposed),
    Mistake("transposed", "transposed: dW = outer(dq, x) has W's shape (m, n) (dW[i, j] = dq[i] * x[j]); the "
                          "shapes tell you which way round",
            lambda got, exp, tolerance=None, **_: transposed(got, exp, tol=tolerance)),
    Mistake("shape", "the lecture's sanity check: a gradient has exactly the shape of its variable (dW like W, "
                     "dx like x)", _shape),
    Mistake("missing_branch", "q = W x fans out: f = sum(q * q) uses q twice, and the gradients of the two "
                              "branches add, so df/dq = 2q, not q", _half),
    scale_mistake(lambda case: {"m": case.inputs["W"].shape[0], "n": case.inputs["W"].shape[1]}),
)
