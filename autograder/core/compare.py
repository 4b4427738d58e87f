"""The comparison primitive: one returned value against one expected value.

Verdicts follow the lecture's `cmp` helper (exact / approximate / maxdiff) and add what a grader needs:
the shapes (a shape mismatch is wrong, except leading size-1 dimensions, which the lecture accepts:
`(64,)` for a `(1, 64)` tensor passes with a note), NaN/inf detection and a verdict for a stub. An answer
in a lower precision than its truth (float32 on a float64 case) is judged at its own precision, with a
note. `exact` is information: `approx` earns the same credit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

# The tolerance types and the dtype defaults live with `Exercise`: its `tolerance` is their one home.
from autograder.core.exercise import DTYPE_DEFAULT, DtypeTolerance, Tolerance  # noqa: F401  (re-exported)
from autograder.runtime.verdicts import (APPROX, ERROR, EXACT, NOT_IMPLEMENTED, NOT_IMPLEMENTED_VALUE, PASSING, TIMEOUT,  # noqa: F401
                       VERDICTS, WRONG, NotImplementedMarker, worst)


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    """The default tolerance for a dtype (an exercise without a tolerance of its own has these)."""
    return DTYPE_DEFAULT.for_dtype(dtype)


@dataclass
class Comparison:
    name: str
    verdict: str
    maxdiff: float | None = None
    shape: tuple | None = None
    expected_shape: tuple | None = None
    message: str = ""
    # Filled by diagnosis: a catalogue id, and where the error is (for the generic diagnosis).
    mistake: str | None = None
    hint: str = ""
    # Cascade-free grading: the verdict of this step applied to the student's own upstream gradients.
    local_verdict: str | None = None
    details: dict = field(default_factory=dict)
    # The scale of the absolute tolerance this was judged with (the diagnosis counts wrong elements with it).
    scale: float | None = None

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING


def as_tensor(value: Any) -> torch.Tensor | None:
    """A returned value as a tensor, or None when it is not numeric (a string, a dict, an object)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, bool):
        return None
    try:
        import numpy as np
        if isinstance(value, np.ndarray) and value.dtype == object:
            return None
        t = torch.as_tensor(value)
        if isinstance(value, (float, list, tuple)) and t.is_floating_point():
            # Python floats are doubles: torch's default dtype would round them to float32
            t = torch.as_tensor(value, dtype=torch.float64)
    except Exception:
        return None
    if t.dtype == torch.bool or t.is_complex():
        return None
    return t


def _shape(t: torch.Tensor | None) -> tuple | None:
    return tuple(t.shape) if t is not None else None


def compare(name: str, got: Any, expected: Any, *, tolerance: Tolerance | DtypeTolerance | None = None,
            scale: float | None = None) -> Comparison:
    """Judge `got` against `expected` (a tensor or a number; numbers compare as 0-d float64) within
    `tolerance` (its entry for the truth's dtype; None: the dtype's default)."""
    numbers = _compare_numbers(name, got, expected, tolerance, scale)
    if numbers is not None:
        return numbers
    exp = as_tensor(expected)
    if exp is None:
        raise TypeError(f"expected value for {name!r} must be numeric, got {type(expected).__name__}")
    if not exp.is_floating_point():
        exp = exp.to(torch.float64)
    expected_shape = _shape(exp)
    if got is None or isinstance(got, NotImplementedMarker):
        return Comparison(name, NOT_IMPLEMENTED, expected_shape=expected_shape,
                          message="not implemented (returned None)" if got is None else "not implemented")
    g = as_tensor(got)
    if g is None:
        return Comparison(name, WRONG, expected_shape=expected_shape,
                          message=f"returned a {type(got).__name__}, expected a tensor of shape {expected_shape}"
                          if expected_shape else f"returned a {type(got).__name__}, expected a number")
    shape = _shape(g)
    notes = []
    if shape != expected_shape:
        if _strip_leading_ones(shape) != _strip_leading_ones(expected_shape):
            maxdiff = None
            try:  # where broadcasting makes them comparable, say how far off the values are too
                maxdiff = float((g.to(torch.float64) - exp.to(torch.float64)).abs().max())
            except RuntimeError:
                pass
            return Comparison(name, WRONG, maxdiff=maxdiff, shape=shape, expected_shape=expected_shape,
                              message=f"shape {shape} but the tensor has shape {expected_shape}")
        # The lecture's `cmp` accepts `(-dbndiff).sum(0)`, shape (64,), for the (1, 64) bnmeani: leading
        # size-1 dimensions are the ones broadcasting adds or drops without changing any value's place.
        notes.append(f"shape {shape} accepted for {expected_shape}: they differ only by leading size-1 "
                     "dimensions, which broadcasting fills the same way")
        g = g.reshape(expected_shape)
    g64, e64 = g.to(torch.float64), exp.to(torch.float64)
    tol = (tolerance or DTYPE_DEFAULT).for_dtype(exp.dtype)
    if g.is_floating_point() and exp.is_floating_point() and torch.finfo(g.dtype).eps > torch.finfo(exp.dtype).eps:
        # A float32 answer (`torch.zeros(probs.shape)` makes one) on a float64 case carries float32 rounding:
        # judge it at the precision it was computed in.
        low = tolerance_for(g.dtype)
        tol = Tolerance(rtol=max(tol.rtol, low.rtol), atol=max(tol.atol, low.atol))
        notes.append(f"returned {g.dtype}, the tensor is {exp.dtype}: judged at {g.dtype} precision")
    elif g.dtype != exp.dtype:
        notes.append(f"returned {g.dtype}, the tensor is {exp.dtype}")
    note = "; ".join(notes)
    if scale is None:
        finite = e64[torch.isfinite(e64)]
        scale = float(finite.abs().max()) if finite.numel() else 0.0
        scale = scale or 1.0
    if bool((~torch.isfinite(g64) & torch.isfinite(e64)).any()):
        n_nan = int(torch.isnan(g64).sum())
        n_inf = int(torch.isinf(g64).sum())
        return Comparison(name, WRONG, maxdiff=math.inf, shape=shape, expected_shape=expected_shape,
                          message=_join(f"contains {n_nan} NaN and {n_inf} inf values where the true gradient is "
                                        "finite", note), mistake="nan", scale=scale)
    same = (g64 == e64) | (torch.isnan(g64) & torch.isnan(e64))
    diff = torch.where(same, torch.zeros_like(g64), (g64 - e64).abs())
    # A NaN where the truth is finite, or vice versa, is infinitely far; an infinite difference stays one
    # (nan_to_num would make it the largest double).
    diff = torch.nan_to_num(diff, nan=math.inf, posinf=math.inf)
    maxdiff = float(diff.max()) if diff.numel() else 0.0
    if bool(same.all()):  # values identical (the lecture's `torch.all(dt == t.grad)`)
        return Comparison(name, EXACT, maxdiff=maxdiff, shape=shape, expected_shape=expected_shape, message=note,
                          scale=scale)
    within = diff <= tol.atol * scale + tol.rtol * e64.abs()
    if bool(within.all()):
        return Comparison(name, APPROX, maxdiff=maxdiff, shape=shape, expected_shape=expected_shape, message=note,
                          scale=scale)
    n_bad = int((~within).sum())
    return Comparison(name, WRONG, maxdiff=maxdiff, shape=shape, expected_shape=expected_shape,
                      message=_join(f"{n_bad} of {within.numel()} elements differ (maxdiff {maxdiff:.3g})", note),
                      scale=scale)


def _numbers(value: Any, ints: bool) -> tuple[list[float], tuple] | None:
    """A plain Python float (or, with `ints`, an int a double holds exactly, or a float64 tensor of at most
    one dimension: a truth), or a non-empty flat list or tuple of them: (the values, the shape a tensor of
    it has). None for anything else."""
    def number(v) -> bool:
        return type(v) is float or (ints and type(v) is int and abs(v) < 2 ** 53)
    if ints and isinstance(value, torch.Tensor):
        if value.dtype != torch.float64 or value.dim() > 1 or not value.numel() or value.device.type != "cpu":
            return None
        values = value.detach().tolist()
        return ([values] if value.dim() == 0 else values), tuple(value.shape)
    if number(value):
        return [float(value)], ()
    if type(value) in (list, tuple) and value and all(number(v) for v in value):
        return [float(v) for v in value], (len(value),)
    return None


def _compare_numbers(name: str, got: Any, expected: Any, tolerance, scale: float | None) -> Comparison | None:
    """`compare` for plain Python numbers of the same shape (micrograd's values, its mistake catalogue's
    predictions): the tensor path's verdict, maxdiff, scale and message, each step the same float64
    arithmetic, without building tensors for a few numbers (that was most of micrograd's judging time).
    None where the tensor path is needed (tensors, another shape, an int answer: its dtype note)."""
    g, e = _numbers(got, ints=False), _numbers(expected, ints=True)
    if g is None or e is None or g[1] != e[1]:
        return None
    (gs, shape), (es, _) = g, e
    tol = (tolerance or DTYPE_DEFAULT).for_dtype(torch.float64)
    if scale is None:
        finite = [abs(b) for b in es if math.isfinite(b)]
        scale = (max(finite) if finite else 0.0) or 1.0
    if any(not math.isfinite(a) and math.isfinite(b) for a, b in zip(gs, es)):
        n_nan, n_inf = sum(map(math.isnan, gs)), sum(map(math.isinf, gs))
        return Comparison(name, WRONG, maxdiff=math.inf, shape=shape, expected_shape=shape,
                          message=f"contains {n_nan} NaN and {n_inf} inf values where the true gradient is finite",
                          mistake="nan", scale=scale)
    same = [a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(gs, es)]
    diff = [0.0 if s else abs(a - b) for s, a, b in zip(same, gs, es)]
    diff = [math.inf if math.isnan(d) else d for d in diff]
    maxdiff = max(diff)
    if all(same):
        return Comparison(name, EXACT, maxdiff=maxdiff, shape=shape, expected_shape=shape, scale=scale)
    n_bad = sum(not (d <= tol.atol * scale + tol.rtol * abs(b)) for d, b in zip(diff, es))
    if not n_bad:
        return Comparison(name, APPROX, maxdiff=maxdiff, shape=shape, expected_shape=shape, scale=scale)
    return Comparison(name, WRONG, maxdiff=maxdiff, shape=shape, expected_shape=shape,
                      message=f"{n_bad} of {len(gs)} elements differ (maxdiff {maxdiff:.3g})", scale=scale)


def _strip_leading_ones(shape: tuple | None) -> tuple | None:
    if shape is None:
        return None
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def cmp(name: str, dt: Any, t: torch.Tensor) -> None:
    """The lecture's helper: compare a hand-computed gradient `dt` with `t.grad`, with a shape column.

        cmp('logprobs', dlogprobs, logprobs)
        logprobs        | exact: True  | approximate: True  | maxdiff: 0.0 | shape: (32, 27) vs (32, 27)
    """
    if not isinstance(t, torch.Tensor) or t.grad is None:
        print(f"{name:15s} | no gradient to compare with: call loss.backward() with {name}.retain_grad() first")
        return
    # A gradient that is mathematically 0 (the lecture's db1: batchnorm cancels b1) is pure rounding noise,
    # so its own magnitude is no scale. The floor 1e-3 gives float32 an absolute tolerance of 1e-8, the
    # lecture's `torch.allclose` default atol.
    c = compare(name, dt, t.grad, scale=max(float(t.grad.detach().abs().max()) if t.grad.numel() else 0.0, 1e-3))
    ex = c.verdict == EXACT
    app = c.verdict in PASSING
    maxdiff = "n/a" if c.maxdiff is None else f"{c.maxdiff:.3g}" if c.maxdiff else "0.0"
    shape = f"{c.shape} vs {c.expected_shape}" if c.shape is not None else f"{c.message} vs {c.expected_shape}"
    print(f"{name:15s} | exact: {str(ex):5s} | approximate: {str(app):5s} | maxdiff: {maxdiff} | shape: {shape}")
