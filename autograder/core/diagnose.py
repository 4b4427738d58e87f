"""Diagnosis: explain a wrong answer.

First the exercise's catalogue of known mistakes (each a `Mistake` with a matcher); then the generic
patterns every tensor answer can show (shape, keepdim, not reduced, transposed, sign, a constant
factor); last, where none fits, a description of where the error is and how large.

Matchers below are building blocks for the catalogues in `autograder/assignments/`. Every matcher is
called with the exercise's `tolerance` (a keyword, with `case`, `name` and `context`): where it asks
whether an answer equals a prediction, it asks within that tolerance, as the judge does.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from autograder.core.compare import PASSING, Comparison, as_tensor, compare
from autograder.core.exercise import DTYPE_DEFAULT, Case, DtypeTolerance, Mistake, Tolerance


def close(got: Any, expected: Any, tol: Tolerance | DtypeTolerance | None = None, scale: float | None = None) -> bool:
    """Does `got` equal `expected` (same shape, within tolerance)? For testing a mistake's prediction."""
    try:
        return compare("_", got, expected, tolerance=tol, scale=scale).verdict in PASSING
    except TypeError:
        return False


def _pair(got: Any, expected: Any):
    """Both in one float dtype, the expected's or the answer's where that is less precise, so that `close`
    judges with that dtype's tolerance (in float64 a float32 answer's rounding would look like a mistake)."""
    g, e = as_tensor(got), as_tensor(expected)
    if g is None or e is None:
        return None, None
    dtype = e.dtype if e.is_floating_point() else torch.float64
    if g.is_floating_point() and torch.finfo(g.dtype).eps > torch.finfo(dtype).eps:
        dtype = g.dtype
    return g.to(dtype), e.to(dtype)


# -- generic shape mistakes ---------------------------------------------------------------------------

def keepdim(got, expected, scale: float | None = None, tol=None) -> bool:
    """Same numbers, a size-1 dimension dropped: (64,) for a (1,64) tensor."""
    g, e = _pair(got, expected)
    return g is not None and g.shape != e.shape and g.numel() == e.numel() and g.squeeze().shape == e.squeeze().shape \
        and close(g.reshape(e.shape), e, tol, scale=scale)


def not_reduced(got, expected, scale: float | None = None, tol=None) -> bool:
    """A broadcast dimension not summed: summing over the extra/longer dims gives the answer."""
    g, e = _pair(got, expected)
    if g is None or g.shape == e.shape or g.dim() < e.dim() or g.numel() <= e.numel():
        return False
    e_shape = (1,) * (g.dim() - e.dim()) + tuple(e.shape)
    dims = [i for i, (a, b) in enumerate(zip(g.shape, e_shape)) if b == 1 and a != 1]
    if not dims or any(a != b for a, b in zip(g.shape, e_shape) if b != 1):
        return False
    return close(g.sum(dims, keepdim=True).reshape(e.shape), e, tol, scale=scale)


def transposed(got, expected, scale: float | None = None, tol=None) -> bool:
    """The transpose is right (and, for a square matrix, the answer itself is not)."""
    g, e = _pair(got, expected)
    return g is not None and g.dim() == 2 and e.dim() == 2 and tuple(g.shape) == tuple(e.shape)[::-1] \
        and close(g.T, e, tol, scale=scale) and (g.shape != e.shape or not close(g, e, tol, scale=scale))


def sign(got, expected, tol=None) -> bool:
    g, e = _pair(got, expected)
    return g is not None and g.shape == e.shape and bool(e.abs().max() > 0) and close(-g, e, tol)


def constant_factor(got, expected, tol=None) -> float | None:
    """The constant c with got = c * expected (least squares), if that explains the answer and c != 1."""
    g, e = _pair(got, expected)
    if g is None or g.shape != e.shape or not bool(torch.isfinite(g).all()):
        return None
    denom = float((e * e).sum())
    if denom == 0:
        return None
    c = float((g * e).sum()) / denom
    if not math.isfinite(c) or c == 0 or abs(c - 1) < 1e-6:
        return None
    return c if close(g, c * e, tol, scale=float(e.abs().max()) * max(1.0, abs(c))) else None


def name_factor(c: float, names: dict[str, float]) -> str:
    """`n`, `1/n`, `n/(n-1)`, `2`, `-1`... for a factor, given the case's named sizes (e.g. {'n': 32})."""
    candidates: dict[str, float] = {}
    for k, v in names.items():
        if not v:
            continue
        candidates[k] = v
        candidates[f"1/{k}"] = 1 / v
        if v > 1:
            candidates[f"{k}/({k}-1)"] = v / (v - 1)
            candidates[f"({k}-1)/{k}"] = (v - 1) / v
            candidates[f"{k}-1"] = v - 1
            candidates[f"1/({k}-1)"] = 1 / (v - 1)
    for label, value in list(candidates.items()):
        candidates["-" + label] = -value
    best = min(candidates.items(), key=lambda kv: abs(kv[1] - c) / abs(c), default=None)
    if best and abs(best[1] - c) <= 1e-4 * abs(c):
        return best[0]
    frac = Fraction(c).limit_denominator(64)
    if abs(float(frac) - c) <= 1e-6 * abs(c):
        return str(frac)
    return f"{c:.6g}"


def scale_mistake(sizes_of=lambda case: {}) -> Mistake:
    """`scale`: off by a constant factor; the hint names it using the case's sizes (n, batch, ...)."""
    def matches(got, exp, case=None, tolerance=None, **_):
        c = constant_factor(got, exp, tolerance)
        if c is None:
            return False
        return f"off by a factor of {name_factor(c, sizes_of(case) if case else {})}"
    return Mistake("scale", "the answer is a constant multiple of the true gradient", matches)


GENERIC_MISTAKES = (
    Mistake("keepdim", "a size-1 dimension is missing: keep it (`keepdim=True` in the sum) so the gradient "
                       "has the shape of its tensor; broadcasting would hide this until it breaks something",
            lambda got, exp, tolerance=None, **_: keepdim(got, exp, tol=tolerance)),
    Mistake("not_reduced", "the tensor was broadcast in the forward pass, so its gradient must be summed over "
                           "the broadcast dimension(s)", lambda got, exp, tolerance=None, **_: not_reduced(got, exp, tol=tolerance)),
    Mistake("transposed", "the gradient is transposed: the gradient of `A @ B` w.r.t. A is `dout @ B.T`, "
                          "w.r.t. B is `A.T @ dout`; match the shapes",
            lambda got, exp, tolerance=None, **_: transposed(got, exp, tol=tolerance)),
    Mistake("sign", "the sign is flipped", lambda got, exp, tolerance=None, **_: sign(got, exp, tolerance)),
    Mistake("shape", "the gradient must have exactly the shape of its tensor",
            lambda got, exp, **_: _pair(got, exp)[0] is not None and tuple(as_tensor(got).shape) != tuple(as_tensor(exp).shape)),
    scale_mistake(),
)


# Mistake ids the grader gives outside every catalogue: a NaN or inf answer (`compare`), autograd used, the
# recursion limit hit, an exception before a gradient was reached (the pipeline and the judges).
FAILURE_IDS = ("nan", "autograd_used", "recursion_limit", "exception")


def describe_error(got: Any, expected: Any, hidden: bool,
                   tolerance: Tolerance | DtypeTolerance = DTYPE_DEFAULT, scale: float | None = None) -> str:
    """Where none of the catalogue fits: which elements differ (by the exercise's tolerance at the judge's
    `scale`, as the judge counts them; None: `compare`'s default scale), how much, and any pattern."""
    g, e = _pair(got, expected)
    if g is None or g.shape != e.shape:
        return ""
    tol = tolerance.for_dtype(e.dtype)  # the truth's dtype, or the answer's where less precise (`_pair`)
    if scale is None:
        finite = e[torch.isfinite(e)]
        scale = (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0
    bad = (g - e).abs() > tol.atol * scale + tol.rtol * e.abs()
    n_bad, n = int(bad.sum()), bad.numel()
    if n_bad == 0:
        return ""
    parts = [f"{n_bad} of {n} elements wrong"]
    if g.dim() == 2 and n_bad < n:
        rows = bad.any(1).nonzero().flatten().tolist()
        cols = bad.any(0).nonzero().flatten().tolist()
        if len(rows) < g.shape[0] and len(rows) <= 5:
            parts.append(f"only in row(s) {rows}")
        elif len(cols) < g.shape[1] and len(cols) <= 5:
            parts.append(f"only in column(s) {cols}")
    if bool((g[bad] == 0).all()):
        parts.append("the wrong elements are all 0 (a contribution missing?)")
    rel = float(((g - e).norm() / e.norm()).item()) if float(e.norm()) > 0 else math.inf
    parts.append(f"relative error {rel:.2g}")
    if not hidden:
        idx = tuple(int(i) for i in torch.nonzero(bad)[0].tolist()) if g.dim() else ()
        parts.append(f"first at index {idx}: got {float(g[idx]):.6g}, expected {float(e[idx]):.6g}")
    return "; ".join(parts)


def diagnose(comparison: Comparison, got: Any, expected: Any, case: Case, mistakes: tuple[Mistake, ...],
             context: dict | None = None, tolerance: Tolerance | DtypeTolerance = DTYPE_DEFAULT) -> Comparison:
    """Fill `mistake` and `hint` of a wrong comparison from the catalogue, then the generic patterns, all
    judged with the exercise's `tolerance`."""
    if comparison.verdict != "wrong":
        return comparison
    if comparison.mistake == "nan":
        comparison.hint = comparison.hint or ("NaN or inf in the gradient: look for a division by zero, log(0), "
                                              "or exp overflow (subtract the max before exp)")
        return comparison
    for mistake in tuple(mistakes) + GENERIC_MISTAKES:
        if mistake.checks and comparison.name not in mistake.checks:
            continue
        if mistake.matches is None:
            continue
        try:
            found = mistake.matches(got, expected, case=case, name=comparison.name, context=context or {},
                                    tolerance=tolerance)
        except Exception:  # a matcher that cannot apply to this answer does not match
            found = False
        if found:
            comparison.mistake = mistake.id
            comparison.hint = mistake.hint + (f" ({found})" if isinstance(found, str) else "")
            return comparison
    comparison.hint = describe_error(got, expected, case.hidden, tolerance, comparison.scale) or comparison.message
    return comparison
