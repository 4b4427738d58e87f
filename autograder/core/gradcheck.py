"""Numerical gradient checking, in the style of CS231n's `eval_numerical_gradient` and `rel_error`.

    >>> gradcheck(lambda x, y: x * y, 3.0, -2.0, analytic=[-2.0, 3.0])
    GradcheckResult(ok=True, max_rel_error=..., ...)

Every differentiable input is perturbed one element at a time by +-eps and the derivative is read off
the centred difference (f(x+h) - f(x-h)) / 2h, in float64. Given `upstream`, f may return a vector and
the checked quantity is sum(upstream * f): a vector-Jacobian product, what a backward pass computes.

The analytic gradient to compare with comes from, in this order:
- `analytic=[...]`, one entry per differentiable input (None skips one): any function of floats;
- Value inputs (anything with `.data` and `.grad`, e.g. micrograd's): f builds the expression,
  gradcheck calls `.backward()` on the output and reads each input's `.grad`;
- tensor inputs: PyTorch autograd, in float64.

Why these numbers (float64, machine epsilon u = 2.2e-16):
- the centred difference errs by h^2 |f'''| / 6 (truncation) plus about u |f| / h (rounding), smallest
  near h = 1e-5 (both ~1e-11 for f, f''' of size 1): EPS = 1e-5, CS231n's own step;
- so a correct gradient typically shows a relative error below 1e-8, and every real mistake (a missing
  term, a factor, a sign) shows 1e-3 or more. RTOL = 1e-6 sits between with room on both sides.
  CS231n's reading of the number: > 1e-2 wrong; 1e-2..1e-4 uncomfortable; < 1e-7 happy;
- an element whose true gradient is ~0 has a relative error of order 1 from rounding alone, so the
  relative error is `|a - n| / max(|a| + |n|, tiny)` with `tiny` = the rounding noise of the numeric
  derivative and of the analytic one (64 ulps of their largest terms: u = 2.2e-16, or 1.2e-7 for a
  float32 gradient), divided by RTOL: noise can never fail a check;
- a kink (relu at 0, max on a tie) inside [x-h, x+h] makes the centred difference a blend of two
  slopes. An element that fails is re-probed with a 100x smaller step (a kink *near* x is no longer
  crossed); one that still fails but equals a one-sided derivative sits *on* a kink: any one-sided
  derivative is a valid (sub)gradient there, so it is reported in `kinks`, not counted as an error.
"""
from __future__ import annotations

import inspect
import math
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

EPS = 1e-5
RTOL = 1e-6
RTOL_FLOAT32 = 1e-4     # a float32 analytic gradient carries ~1e-7 relative rounding per operation
_NOISE_ULPS = 64        # rounding of one evaluation of f (or of an analytic gradient), in ulps of its terms
REFINE = 1e-2           # the second, closer probe of a failing element: eps * REFINE
KINK_RTOL = 1e-3        # one-sided differences err by h |f''| / 2: ~1e-5 relative, with a wide margin
_U64 = float(np.finfo(np.float64).eps)
_U32 = float(np.finfo(np.float32).eps)


class GradcheckError(ValueError):
    """gradcheck was called in a way it cannot check (the message says what to change)."""


def rel_error(x: Any, y: Any, tiny: float = 1e-8) -> float:
    """CS231n's `rel_error`: max |x - y| / max(|x| + |y|, tiny)."""
    x, y = _array(x), _array(y)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), tiny))) if x.size else 0.0


# -- what an input is -------------------------------------------------------------------------------------

def _is_value(obj: Any) -> bool:
    """A scalar-engine node: has `.data` and `.grad` (micrograd's Value, or a student's own)."""
    return not isinstance(obj, (np.ndarray, str, bytes)) and not _is_tensor(obj) \
        and hasattr(obj, "data") and hasattr(obj, "grad")


def _is_tensor(obj: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch():
    """torch if the caller has imported it: gradcheck works on floats and numpy without it."""
    return sys.modules.get("torch")


def _is_real(x: Any) -> bool:
    return isinstance(x, (float, np.floating)) and not isinstance(x, bool)


def _nested_floats(obj: Any) -> bool:
    """A (nested) list or tuple of floats: checked like an array, passed to f as a list again."""
    if isinstance(obj, (list, tuple)) and obj:
        return all(_is_real(v) or _nested_floats(v) for v in obj)
    return False


class _Slot:
    """One differentiable input: its float64 values (flat), how to write them into what f receives."""

    def __init__(self, position: int, name: str, kind: str, original: Any):
        self.position, self.name, self.kind, self.original = position, name, kind, original
        if kind == "value":
            self.nodes = [original]
            self.shape: tuple = ()
        elif kind == "values":
            self.nodes = list(original)
            self.shape = (len(self.nodes),)
        if kind in ("value", "values"):
            self.base = np.array([float(v.data) for v in self.nodes], dtype=np.float64)
        elif kind == "tensor":
            self.base = original.detach().to("cpu").double().numpy().reshape(-1).copy()
            self.shape = tuple(original.shape)
        else:
            arr = np.asarray(original, dtype=np.float64)
            self.base, self.shape = arr.reshape(-1).copy(), arr.shape
        self.current = self.base.copy()

    @property
    def size(self) -> int:
        return self.base.size

    def label(self) -> str:
        return f"input {self.position}" + (f" ({self.name})" if self.name else "")

    def set(self, i: int, value: float) -> None:
        self.current[i] = value
        if self.kind in ("value", "values"):
            self.nodes[i].data = value

    def restore(self) -> None:
        self.current[:] = self.base
        if self.kind in ("value", "values"):
            for node, old in zip(self.nodes, self._old_data):
                node.data = old

    def remember(self) -> None:
        if self.kind in ("value", "values"):
            self._old_data = [node.data for node in self.nodes]

    def argument(self) -> Any:
        """What f receives for this input now (float64, never requiring grad)."""
        if self.kind in ("value", "values"):
            return self.original
        if self.kind == "tensor":
            torch = _torch()
            return torch.from_numpy(self.current.reshape(self.shape).copy())
        if self.kind == "float":
            return float(self.current[0])
        if self.kind == "list":
            return self.current.reshape(self.shape).tolist()
        return self.current.reshape(self.shape).copy()  # numpy array


def _classify(position: int, name: str, obj: Any) -> _Slot | None:
    if _is_value(obj):
        return _Slot(position, name, "value", obj)
    if isinstance(obj, (list, tuple)) and obj and all(_is_value(v) for v in obj):
        return _Slot(position, name, "values", obj)
    if _is_tensor(obj):
        return _Slot(position, name, "tensor", obj) if obj.is_floating_point() else None
    if isinstance(obj, np.ndarray):
        return _Slot(position, name, "array", obj) if np.issubdtype(obj.dtype, np.floating) else None
    if _is_real(obj):
        return _Slot(position, name, "float", obj)
    if _nested_floats(obj):
        return _Slot(position, name, "list", obj)
    return None  # ints, bools, integer tensors, None, strings: passed to f unchanged


def _parameter_names(f: Callable, n: int) -> list[str]:
    try:
        params = [p for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:n]]
    return names + [""] * (n - len(names))


# -- what f returns -----------------------------------------------------------------------------------------

def _array(obj: Any) -> np.ndarray:
    """f's output (or an analytic gradient, or upstream) as a float64 array."""
    if _is_tensor(obj):
        return obj.detach().to("cpu").double().numpy()
    if _is_value(obj):
        return np.asarray(float(obj.data), dtype=np.float64)
    if isinstance(obj, (list, tuple)):
        return np.asarray([_array(v) for v in obj], dtype=np.float64)
    try:
        arr = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise GradcheckError(f"expected numbers, got {type(obj).__name__}") from None
    return arr


class _Objective:
    """f reduced to one number: f itself (a scalar) or sum(upstream * f) when upstream is given."""

    def __init__(self, f: Callable, args: list, slots: list[_Slot], upstream: Any):
        self.f, self.args, self.slots = f, args, slots
        self.upstream = None if upstream is None else _array(upstream)

    def call(self) -> Any:
        args = list(self.args)
        for slot in self.slots:
            args[slot.position] = slot.argument()
        return self.f(*args)

    def reduce(self, out: Any) -> tuple[float, float]:
        """(the scalar, the magnitude of the terms it sums: the scale of its rounding error)."""
        try:
            y = _array(out)
        except GradcheckError as exc:
            raise GradcheckError(f"f must return a number, a tensor, an array or a list of numbers: {exc}") from None
        if self.upstream is None:
            if y.size != 1:
                raise GradcheckError(f"f returned shape {y.shape}, not a scalar: return a scalar, or pass "
                                     f"upstream= with the output's shape to check a vector-Jacobian product")
            v = float(y.reshape(()))
            return v, abs(v)
        if y.shape != self.upstream.shape:
            raise GradcheckError(f"upstream has shape {self.upstream.shape} but f returned shape {y.shape}")
        terms = self.upstream * y
        return float(terms.sum()), float(np.abs(terms).sum())

    def __call__(self) -> tuple[float, float]:
        return self.reduce(self.call())


# -- the result ------------------------------------------------------------------------------------------

def _band(rel: float) -> str:
    """CS231n's reading of a relative error."""
    if rel > 1e-2:
        return "the gradient is almost surely wrong"
    if rel > 1e-4:
        return "uncomfortable: probably wrong unless f has kinks"
    if rel > 1e-7:
        return "acceptable"
    return "the gradient is right"


@dataclass
class GradcheckResult:
    ok: bool
    max_rel_error: float
    worst_input: str | None           # "input 1 (W)"
    worst_index: tuple | None         # index inside that input; () for a scalar
    analytic: list[np.ndarray]        # per input, the input's shape
    numeric: list[np.ndarray]         # NaN where not probed (see `samples`)
    rel_errors: list[np.ndarray]
    inputs: list[str]
    eps: float
    rtol: float
    n_failed: int = 0
    n_checked: int = 0
    kinks: list[tuple[str, tuple]] = field(default_factory=list)

    def _worst_values(self) -> str:
        if self.worst_input is None:
            return ""
        k = self.inputs.index(self.worst_input)
        a, n = self.analytic[k][self.worst_index], self.numeric[k][self.worst_index]
        return f"analytic {a:.8g}, numeric {n:.8g}"

    def summary(self) -> str:
        head = "ok" if self.ok else "FAILED"
        where = f" at {self.worst_input}, index {self.worst_index}: {self._worst_values()}" if self.worst_input else ""
        text = (f"gradcheck {head}: max relative error {self.max_rel_error:.3g}{where} "
                f"({_band(self.max_rel_error)}); {self.n_checked} elements checked, "
                f"{self.n_failed} over rtol {self.rtol:g}, eps {self.eps:g}")
        if self.kinks:
            shown = ", ".join(f"{w} {i}" for w, i in self.kinks[:5])
            text += f"; {len(self.kinks)} on a kink (a one-sided derivative matched): {shown}"
        return text

    __str__ = summary

    def __repr__(self) -> str:
        return (f"GradcheckResult(ok={self.ok}, max_rel_error={self.max_rel_error:.3g}, worst={self.worst_input!r} "
                f"{self.worst_index}, failed={self.n_failed}/{self.n_checked}, kinks={len(self.kinks)}, "
                f"eps={self.eps:g}, rtol={self.rtol:g})")

    def __bool__(self) -> bool:
        return self.ok


# -- the check --------------------------------------------------------------------------------------------

def _analytic_from_values(objective: _Objective, slots: list[_Slot]) -> list[np.ndarray]:
    for slot in slots:
        for node in slot.nodes:
            node.grad = 0.0
    out = objective.call()
    objective.reduce(out)  # validates the shape against upstream
    u = objective.upstream
    if u is None:
        root = out[0] if isinstance(out, (list, tuple)) else out
    else:  # sum(upstream * out), built in the engine itself so backward runs once over shared nodes
        outs = list(np.asarray(out, dtype=object).reshape(-1)) if isinstance(out, (list, tuple)) else [out]
        root = None
        for node, weight in zip(outs, u.reshape(-1)):
            term = node * float(weight)
            root = term if root is None else root + term
    if not hasattr(root, "backward"):
        raise GradcheckError(f"f returned a {type(root).__name__} with no .backward(): with Value inputs f must "
                             "return the Value it builds")
    root.backward()
    return [np.asarray([float(node.grad) for node in slot.nodes], dtype=np.float64).reshape(slot.shape)
            for slot in slots]


def _analytic_from_autograd(f: Callable, args: list, slots: list[_Slot], upstream: np.ndarray | None):
    import torch
    args = list(args)
    leaves = []
    for slot in slots:
        leaf = torch.from_numpy(slot.base.reshape(slot.shape).copy()).requires_grad_(True)
        args[slot.position] = leaf
        leaves.append(leaf)
    with torch.enable_grad():
        out = f(*args)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise GradcheckError("f's output does not depend on its tensor inputs through autograd (a Python "
                                 "number, or computed with numpy or under no_grad): pass analytic=[...]")
        if upstream is None:
            if out.numel() != 1:
                raise GradcheckError(f"f returned shape {tuple(out.shape)}, not a scalar: return a scalar, or "
                                     "pass upstream= with the output's shape to check a vector-Jacobian product")
            root = out.reshape(())
        else:
            if tuple(out.shape) != upstream.shape:
                raise GradcheckError(f"upstream has shape {upstream.shape} but f returned shape {tuple(out.shape)}")
            root = (out.double() * torch.from_numpy(upstream)).sum()
        grads = torch.autograd.grad(root, leaves, allow_unused=True)
    return [np.zeros(slot.shape) if g is None else g.detach().double().numpy().reshape(slot.shape)
            for slot, g in zip(slots, grads)]


def _given_analytic(analytic: Sequence, slots: list[_Slot], n_differentiable: int) -> list:
    if not isinstance(analytic, (list, tuple)):
        analytic = [analytic]
    if len(analytic) != n_differentiable:
        raise GradcheckError(f"analytic has {len(analytic)} entries but f has {n_differentiable} differentiable "
                             "input(s): give one gradient per input (None to skip one)")
    out = []
    for slot, grad in zip(slots, analytic):
        if grad is None:
            out.append(None)
            continue
        arr = _array(grad)
        if arr.shape != slot.shape:
            raise GradcheckError(f"the analytic gradient of {slot.label()} has shape {arr.shape} but the input has "
                                 f"shape {slot.shape}: a gradient has exactly its variable's shape")
        out.append(arr)
    return out


def _float32_analytic(analytic: Sequence | None) -> bool:
    if analytic is None:
        return False
    items = analytic if isinstance(analytic, (list, tuple)) else [analytic]
    torch = _torch()
    return any((torch is not None and isinstance(g, torch.Tensor) and g.dtype in (torch.float32, torch.float16,
                                                                                 torch.bfloat16))
               or (isinstance(g, np.ndarray) and g.dtype in (np.float32, np.float16)) for g in items)


def _probe(objective: _Objective, slot: _Slot, i: int, eps: float) -> tuple[float, float, float, float, float]:
    """(f(x+h), f(x-h), h+, h-, magnitude of the terms): the step actually taken, not the one asked for."""
    x = slot.base[i]
    xp, xm = x + eps, x - eps
    try:
        slot.set(i, xp)
        fp, sp = objective()
        slot.set(i, xm)
        fm, sm = objective()
    finally:
        slot.set(i, x)
    return fp, fm, xp - x, x - xm, max(sp, sm)


def gradcheck(f: Callable, *inputs: Any, eps: float = EPS, upstream: Any = None, analytic: Sequence | None = None,
              rtol: float | None = None, atol: float = 0.0, samples: int | None = None,
              seed: int = 0) -> GradcheckResult:
    """Check the gradient of `f` at `inputs` against centred differences (see the module docstring).

    eps: the step (float64); rtol: the largest relative error that passes (default 1e-6, or 1e-4 when a
    given analytic gradient is float32); atol: an absolute difference the caller knows to be noise (a
    gradient that is mathematically 0 but computed as a sum of terms of size T carries ~ulp(T) of noise),
    0 by default; samples: probe only this many random elements of each input (CS231n's
    `grad_check_sparse`), chosen with `seed`.
    """
    if not callable(f):
        raise GradcheckError(f"the first argument must be the function to check, got {type(f).__name__}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise GradcheckError(f"eps must be a positive finite number, got {eps!r}")
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise GradcheckError(f"samples must be a positive int (elements probed per input), got {samples!r}")
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise GradcheckError(f"atol must be a finite number >= 0, got {atol!r}")
    if not inputs:
        raise GradcheckError("no inputs: call gradcheck(f, x, y, ...) with the point to check at")
    names = _parameter_names(f, len(inputs))
    slots = [s for s in (_classify(k, names[k], x) for k, x in enumerate(inputs)) if s is not None]
    if not slots:
        raise GradcheckError("no differentiable input: floats, float arrays/tensors and Values are checked; "
                             "ints, bools and integer tensors are passed through (write 3.0, not 3)")
    kinds = {s.kind for s in slots}
    args = list(inputs)
    if rtol is None:
        rtol = RTOL_FLOAT32 if _float32_analytic(analytic) else RTOL
    for slot in slots:
        slot.remember()
    objective = _Objective(f, args, slots, upstream)
    try:
        if analytic is not None:
            grads = _given_analytic(analytic, slots, len(slots))
        elif kinds <= {"value", "values"}:
            grads = _analytic_from_values(objective, slots)
        elif kinds == {"tensor"}:
            grads = _analytic_from_autograd(f, args, slots, objective.upstream)
        else:
            raise GradcheckError(f"nothing to compare with: inputs of kind {sorted(kinds)} have no gradient of their "
                                 "own; pass analytic=[...] (one gradient per differentiable input)")
        f0, s0 = objective()
        if not math.isfinite(f0):
            raise GradcheckError(f"f is not finite at the point checked ({f0}): no derivative to check")
        rng = np.random.default_rng(seed)
        analytic_ulp = _U32 if _float32_analytic(analytic) else _U64
        checked = [_check_input(objective, slot, grad, eps, rtol, atol, analytic_ulp, f0, s0, samples, rng)
                   for slot, grad in zip(slots, grads)]
    finally:
        for slot in slots:
            slot.restore()
    rows = [(rel, slot.label(), index) for slot, c in zip(slots, checked) for index, rel in c.errors]
    if not rows and not any(c.kinks for c in checked):
        raise GradcheckError("nothing was checked: every input is empty or skipped (None in analytic)")
    worst = max(rows, default=(0.0, None, None), key=lambda row: row[0])
    return GradcheckResult(
        ok=all(rel <= rtol for rel, _, _ in rows), max_rel_error=worst[0], worst_input=worst[1],
        worst_index=worst[2], analytic=[c.analytic for c in checked], numeric=[c.numeric for c in checked],
        rel_errors=[c.rel for c in checked], inputs=[s.label() for s in slots], eps=eps, rtol=rtol,
        n_failed=sum(rel > rtol for rel, _, _ in rows), n_checked=len(rows) + sum(len(c.kinks) for c in checked),
        kinks=[(slot.label(), index) for slot, c in zip(slots, checked) for index in c.kinks])


@dataclass
class _Checked:
    """One input's check: arrays of its shape (NaN where not probed), per-element errors, kinks."""
    analytic: np.ndarray
    numeric: np.ndarray
    rel: np.ndarray
    errors: list            # (index, relative error) of the probed elements not on a kink
    kinks: list             # indices of the probed elements on a kink


def _check_input(objective, slot, grad, eps, rtol, atol, analytic_ulp, f0, s0, samples, rng) -> _Checked:
    numeric, rel = np.full(slot.size, np.nan), np.full(slot.size, np.nan)
    out = _Checked(np.full(slot.shape, np.nan) if grad is None else grad, numeric.reshape(slot.shape),
                   rel.reshape(slot.shape), [], [])
    if grad is None:  # the caller skipped this input
        return out
    a = grad.reshape(-1)
    noise = _NOISE_ULPS * analytic_ulp * (float(np.abs(a).max()) if a.size else 0.0) + atol
    where = range(slot.size) if samples is None or samples >= slot.size else \
        sorted(rng.choice(slot.size, size=samples, replace=False).tolist())
    for i in where:
        rel[i], numeric[i], kink = _check_element(objective, slot, i, a[i], eps, rtol, f0, s0, noise)
        index = tuple(int(j) for j in np.unravel_index(i, slot.shape)) if slot.shape else ()
        if kink:
            out.kinks.append(index)
        else:
            out.errors.append((index, float(rel[i])))
    return out


def _check_element(objective, slot, i, a, eps, rtol, f0, s0, analytic_noise) -> tuple[float, float, bool]:
    """(relative error, numeric derivative, on a kink?) of element i."""
    step = eps
    for attempt in (1, 2):
        fp, fm, hp, hm, scale = _probe(objective, slot, i, step)
        numeric = (fp - fm) / (hp + hm)
        # The rounding noise of the difference quotient, and of the analytic value when it is float32.
        noise = _NOISE_ULPS * _U64 * max(scale, s0) / min(hp, hm) + analytic_noise
        tiny = max(noise / rtol, np.finfo(np.float64).tiny)
        rel = abs(a - numeric) / max(abs(a) + abs(numeric), tiny)
        if not math.isfinite(numeric):
            return math.inf, numeric, False
        if rel <= rtol or attempt == 2 or step * REFINE <= 1e-12 * max(1.0, abs(slot.base[i])):
            break
        step = eps * REFINE  # a kink near x is not crossed by a shorter step
    if rel > rtol:
        forward, backward = (fp - f0) / hp, (f0 - fm) / hm
        one_sided_noise = _NOISE_ULPS * _U64 * max(scale, s0) / min(hp, hm) + analytic_noise
        def matches(d):
            return abs(a - d) <= KINK_RTOL * (abs(a) + abs(d)) + one_sided_noise
        if not matches(numeric) and abs(forward - backward) > KINK_RTOL * (abs(forward) + abs(backward)) + one_sided_noise \
                and (matches(forward) or matches(backward)):
            return rel, numeric, True
    return rel, numeric, False


def numerical_gradient(f: Callable, *inputs: Any, eps: float = EPS, upstream: Any = None) -> list[np.ndarray]:
    """CS231n's `eval_numerical_gradient` (and `_array` with upstream): the centred-difference gradient
    of f w.r.t. every differentiable input, float64, each of its input's shape."""
    if not callable(f):
        raise GradcheckError(f"the first argument must be the function to differentiate, got {type(f).__name__}")
    names = _parameter_names(f, len(inputs))
    slots = [s for s in (_classify(k, names[k], x) for k, x in enumerate(inputs)) if s is not None]
    if not slots:
        raise GradcheckError("no differentiable input (floats, float arrays/tensors, Values)")
    for slot in slots:
        slot.remember()
    objective = _Objective(f, list(inputs), slots, upstream)
    out = []
    try:
        for slot in slots:
            g = np.empty(slot.size)
            for i in range(slot.size):
                fp, fm, hp, hm, _ = _probe(objective, slot, i, eps)
                g[i] = (fp - fm) / (hp + hm)
            out.append(g.reshape(slot.shape))
    finally:
        for slot in slots:
            slot.restore()
    return out


class _CallableModule(types.ModuleType):
    """`autograder.core.gradcheck(f, x)` must work once this module is imported too: the import system then
    binds the package attribute `gradcheck` to the module, so the module itself calls gradcheck."""

    def __call__(self, *args, **kwargs):
        return gradcheck(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
