"""micrograd_exercises: the catalogue of known mistakes, each matched by recomputing the wrong answer it
predicts on the case's own inputs (in the grader's process)."""
from __future__ import annotations

import torch

from autograder.core.compare import Tolerance
from autograder.core.diagnose import close
from autograder.core.exercise import Mistake
from autograder.assignments.micrograd_exercises.cases import _abc, quotients, torch_op

TIGHT = Tolerance(rtol=1e-7, atol=1e-9)


def _near(got, predicted) -> bool:
    return close(got, predicted, TIGHT, scale=1.0)


# -- gradf -----------------------------------------------------------------------------------------------

def _gradf_variants(case):
    a, b, c = _abc(case)
    return {
        "df_db": {"chain_rule_sin3b": 2.5 * b**1.5 + torch.cos(3 * b),
                  "power_rule": [1.5 * b**1.5 + 3 * torch.cos(3 * b), 2.5 * b**2.5 + 3 * torch.cos(3 * b),
                                 b**1.5 + 3 * torch.cos(3 * b), 2.5 * b**1.5 - 3 * torch.cos(3 * b)]},
        "df_da": {"power_rule": [-3 * a**2 - a**-0.5, -3 * a**2 - 0.5 * a**0.5, -3 * a**2 + 0.5 * a**-0.5,
                                 -3 * a**3 - 0.5 * a**-0.5, -2 * a**2 - 0.5 * a**-0.5, 3 * a**2 - 0.5 * a**-0.5]},
        "df_dc": {"reciprocal_sign": -1.0 / c**2, "power_rule": [1.0 / c, -1.0 / c, 2.0 / c**2, 1.0 / c**3]},
    }


def _gradf_matcher(mistake: str):
    def matches(got, exp, case=None, name=None, **_):
        predicted = _gradf_variants(case).get(name, {}).get(mistake)
        if predicted is None:
            return False
        return any(_near(got, p) for p in (predicted if isinstance(predicted, list) else [predicted]))
    return matches


GRADF_MISTAKES = (
    Mistake("chain_rule_sin3b", "d/db sin(3*b) = 3*cos(3*b): the chain rule multiplies by the derivative of the "
                                "inside, 3*b, which is 3", _gradf_matcher("chain_rule_sin3b"), ("df_db",)),
    Mistake("reciprocal_sign", "d/dc (-1.0/c) = +1/c**2: the minus in front and the one from c**-1 cancel",
            _gradf_matcher("reciprocal_sign"), ("df_dc",)),
    Mistake("power_rule", "the power rule: d/dx x**n = n * x**(n-1) (so b**2.5 gives 2.5*b**1.5, a**0.5 gives "
                          "0.5*a**-0.5, -a**3 gives -3*a**2, 1/c = c**-1 gives -c**-2)", _gradf_matcher("power_rule")),
    Mistake("sign", "the sign is flipped", lambda got, exp, **_: _near(got, -exp)),
)


# -- numerical gradients ---------------------------------------------------------------------------------

STEPS = sorted({m * 10.0**-k for k in range(0, 17) for m in (1, 2, 5)}, reverse=True)
LARGE_STEP, SMALL_STEP = 1e-5, 1e-9


def _python_quotients(case, h: float, kind: str, name: str) -> list[float]:
    """The difference quotient at step h as the student's code computes it: in Python floats, with the
    same f the driver passes (so at a tiny h even the rounding noise is the same, bit for bit)."""
    from autograder.assignments.micrograd_exercises.student_side import FUNCTIONS
    f = FUNCTIONS[case.inputs.get("f", "lecture")]
    i = {"df_da": 0, "df_db": 1, "df_dc": 2}[name]
    out = []
    for p in case.inputs["points"]:
        plus, minus = list(p), list(p)
        plus[i] += h
        minus[i] -= h
        out.append({"forward": lambda: (f(*plus) - f(*p)) / h, "backward": lambda: (f(*p) - f(*minus)) / h,
                    "central": lambda: (f(*plus) - f(*minus)) / (2 * h)}[kind]())
    return out


def _quotient_step(got, case, name, kinds=("forward", "central", "backward")) -> tuple[float, str] | None:
    """The step h (1, 2 or 5 times a power of ten) and the kind of quotient the answer is, computed as the
    student's code would (a quotient written in another order differs by rounding only: rtol 1e-9)."""
    for h in STEPS:
        for kind in kinds:
            if close(got, _python_quotients(case, h, kind, name), Tolerance(rtol=1e-9, atol=1e-12), scale=1.0):
                return h, kind
    return None


def _second_derivative(case, name) -> torch.Tensor:
    """d2f/dx2 at each point for the variable of check `name` (each point's f depends on its own a, b, c)."""
    from autograder.assignments.micrograd_exercises.cases import torch_f
    a, b, c = (x.clone().requires_grad_() for x in _abc(case))
    var = {"df_da": a, "df_db": b, "df_dc": c}[name]
    with torch.enable_grad():
        g, = torch.autograd.grad(torch_f(case.inputs.get("f", "lecture"), a, b, c).sum(), var, create_graph=True)
        g2, = torch.autograd.grad(g.sum(), var)
    return g2


def _fitted_step(got, exp, case, name) -> tuple[float, str] | None:
    """A one-sided difference's error is about h/2 * f'' (forward; backward: -h/2 * f''): the step h that
    explains the answer's error at every point, where one does (checked by recomputing the quotient)."""
    err = torch.as_tensor(got, dtype=torch.float64).reshape(exp.shape) - exp
    f2 = _second_derivative(case, name)
    usable = f2.abs() > 1e-3
    if not bool(usable.any()):
        return None
    steps = (2 * err[usable] / f2[usable])
    g = torch.as_tensor(got, dtype=torch.float64).reshape(exp.shape)
    for sign, kind in ((1, "forward"), (-1, "backward")):
        h = float((sign * steps).median())
        if h <= 0:
            continue
        # the quotient at that h must explain the error itself (to 10%), not merely be near the truth
        miss = (g - torch.tensor(_python_quotients(case, h, kind, name), dtype=torch.float64)).abs()
        if bool((miss <= 0.1 * err.abs() + 1e-12).all()):
            return h, kind
    return None


def _step_too_large(got, exp, case=None, name=None, **_):
    found = _quotient_step(got, case, name) or _fitted_step(got, exp, case, name)
    if found and found[0] >= LARGE_STEP:
        return f"it looks like a {found[1]} difference with h = {found[0]:.2g}"
    return False


def _step_too_small(got, exp, case=None, name=None, **_):
    found = _quotient_step(got, case, name, kinds=("forward", "central"))
    if found and found[0] <= SMALL_STEP:
        return f"it looks like h = {found[0]:g}"
    # Rounding noise: small, and explained by no step's truncation error (that would be a large step).
    err = (torch.as_tensor(got, dtype=torch.float64).reshape(exp.shape) - exp).abs()
    if bool((err < 1e-2).all()) and _quotient_step(got, case, name) is None and \
            _fitted_step(got, exp, case, name) is None:
        return "the error looks like rounding noise"
    return False


def _analytic_in_disguise(got, exp, case=None, name=None, **_):
    """numerical_grad returns the lecture's analytic gradient whatever f it is given."""
    if case.inputs.get("f") != "other":
        return False
    a, b, c = _abc(case)
    analytic = {"df_da": -3 * a**2 - 0.5 * a**-0.5, "df_db": 3 * torch.cos(3 * b) + 2.5 * b**1.5,
                "df_dc": 1.0 / c**2}[name]
    return close(got, analytic, Tolerance(rtol=1e-4, atol=1e-4), scale=1.0)


NUMERICAL_MISTAKES = (
    Mistake("not_numerical", "numerical_grad must estimate the gradient of the f it is given, from f's values "
                             "alone (f(a + h, b, c) - f(a, b, c)) / h...: it returned the analytic gradient of "
                             "the lecture's f", _analytic_in_disguise),
    Mistake("step_too_large", "the step h is too large: a forward difference is off by about h/2 * f''; take h "
                              "around 1e-6 (the notebook checks to 1e-5)", _step_too_large),
    Mistake("step_too_small", "the step h is too small: f(a + h) - f(a) loses its digits to rounding (about "
                              "1e-16 * |f| / h); take h around 1e-6", _step_too_small),
)


def _one_sided(got, exp, case=None, name=None, **_):
    h = case.inputs["h"]
    for kind in ("forward", "backward"):
        if close(got, quotients(case, h, kind)[name], Tolerance(rtol=1e-8, atol=1e-9), scale=1.0):
            return f"a {kind} difference"
    return False


def _no_half(got, exp, case=None, name=None, **_):
    return close(got, quotients(case, case.inputs["h"], "central_no_half")[name], Tolerance(rtol=1e-8, atol=1e-9),
                 scale=1.0)


def _ignores_h(got, exp, case=None, name=None, **_):
    found = _quotient_step(got, case, name, kinds=("central", "forward"))
    if found and found[0] != case.inputs["h"]:
        return f"it looks like a {found[1]} difference with h = {found[0]:g}, not the h = {case.inputs['h']:g} given"
    return False


NUMERICAL2_MISTAKES = (
    Mistake("forward_difference", "the symmetric derivative is (f(x + h) - f(x - h)) / (2h): a one-sided "
                                  "difference at the same h is off by about h/2 * f'', the central one by about "
                                  "h**2/6 * f'''", _one_sided),
    Mistake("central_missing_half", "the symmetric difference spans 2h: divide by 2 * h", _no_half),
    Mistake("ignores_h", "use the step h you are given: the point is to compare both formulas at the same h",
            _ignores_h),
)


# -- the Value operations ----------------------------------------------------------------------------------

def _op_rows(case, name):
    return case.inputs["ops"][name], case.inputs["upstream"]


def _predict(case, name, grads) -> torch.Tensor:
    """Rows [out, input grads...] with the true forward and the given input gradients."""
    points, ups = _op_rows(case, name)
    rows = []
    for p, u in zip(points, ups):
        true = torch_op(name, p, u)
        rows.append([true[0]] + list(grads(p, u, true)))
    return torch.tensor(rows, dtype=torch.float64)


def _no_backward(got, exp, case=None, name=None, **_):
    zeros = _predict(case, name, lambda p, u, t: [0.0] * (len(t) - 1))
    return _near(got, zeros)


def _no_upstream(got, exp, case=None, name=None, **_):
    """The local derivative alone: out.grad was not multiplied in."""
    return _near(got, _predict(case, name, lambda p, u, t: [g / u for g in t[1:]]))


def _op_specific(got, exp, case=None, name=None, **_):
    import math
    variants = {
        "a.exp()": [lambda p, u, t: [u * p[0]], lambda p, u, t: [u]],                 # self.data for out.data
        "a.log()": [lambda p, u, t: [u * math.log(p[0])], lambda p, u, t: [u * p[0]],
                    lambda p, u, t: [-u / p[0]]],
        "a ** k": [lambda p, u, t: [u * p[0] ** (p[1] - 1)], lambda p, u, t: [u * p[1] * p[0] ** p[1]]],
        "a / b": [lambda p, u, t: [u / p[1], u * p[0] / p[1] ** 2], lambda p, u, t: [u / p[1], u / p[0]]],
        "a * b": [lambda p, u, t: [u * p[0], u * p[1]]],
    }.get(name, [])
    return any(_near(got, _predict(case, name, v)) for v in variants)


OP_HINTS = ("exp's local derivative is exp(x) itself: self.grad += out.data * out.grad; log's is 1/x: "
            "self.grad += (1 / self.data) * out.grad; x**k's is k * x**(k-1); a / b = a * b**-1; "
            "mul switches: self.grad += other.data * out.grad")

OPS_MISTAKES = (
    Mistake("no_backward", "this operation has no _backward (or it never runs): its inputs' grad stays 0. Every "
                           "op sets out._backward to push out.grad to its inputs", _no_backward),
    Mistake("no_upstream", "the chain rule multiplies the local derivative by the upstream gradient: "
                           "self.grad += local * out.grad", _no_upstream),
    Mistake("op_derivative", "the local derivative is wrong: " + OP_HINTS, _op_specific),
)


# -- softmax and nll -------------------------------------------------------------------------------------

def _not_normalised(got, exp, case=None, name=None, **_):
    logits = torch.tensor(case.inputs["logits"], dtype=torch.float64)
    if name == "probs":
        return _near(got, logits.exp())
    return _near(got, logits.exp() * torch.tensor(case.inputs["upstream"], dtype=torch.float64))


SOFTMAX_MISTAKES = (
    Mistake("softmax_not_normalised", "softmax divides every count by their sum (the denominator), so that the "
                                      "probabilities add to 1", _not_normalised),
)


def _nll_sign(got, exp, **_):
    return _near(got, -exp)


NLL_MISTAKES = (
    Mistake("nll_sign", "the negative log likelihood is MINUS the log of the label's probability: "
                        "loss = -probs[label].log() (a loss to minimise, >= 0)", _nll_sign),
)
