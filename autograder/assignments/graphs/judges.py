"""graphs, grader side: the judges, each called with its exercise's tolerance (declared in `__init__`).

The gates are judged elementwise; the max gate's tie check accepts every valid subgradient. The worked
examples are judged globally against PyTorch and, where wrong, on their wiring given the student's own gates:
the driver notes every gate a worked example makes (class, forward arguments) and measures its backward at
dout = 0, 1, 2 afterwards. A gate's backward is affine in dout (r(d) = r(0) + d * (r(1) - r(0))), so what the
right wiring gives with the student's own gates is computable here. The function is correct on its own when
its answer equals that; "depends on MultiplyGate, which is wrong" when a gate is wrong.
"""
from __future__ import annotations

import functools

import torch

from autograder.core.compare import APPROX, EXACT, WRONG, Comparison, compare
from autograder.core.diagnose import close
from autograder.core.exercise import Case, takes_tolerance
from autograder.assignments.graphs.student_side import _t


def _close(got, expected, tolerance) -> bool:
    return close(got, expected, tolerance)


@takes_tolerance
def judge_scalars(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
    return [compare(name, outputs.get(name), expected, tolerance=tolerance) for name, expected in truth.items()]


def judge_tie(got, truth: torch.Tensor, dout: list[float], tolerance) -> Comparison:
    """Any split of dout with dx + dy = dout and both parts between 0 and dout is a valid subgradient:
    route-to-x, route-to-y and PyTorch's even split all pass; each row may follow its own rule."""
    c = compare("tie", got, truth, tolerance=tolerance)
    if c.verdict in (EXACT, APPROX) or c.shape != c.expected_shape:
        return c
    g, d = torch.as_tensor(got, dtype=torch.float64), _t(dout)
    total_ok = _close(g.sum(1), d, tolerance)
    t = g[:, 0] / d
    between = bool(((t >= -1e-12) & (t <= 1 + 1e-12)).all())
    if total_ok and between:
        # The distance to the nearest valid subgradient is 0: report the rule the student follows.
        rule = "to x" if _close(g[:, 1], torch.zeros_like(d), tolerance) else "to y" if _close(g[:, 0], torch.zeros_like(d), tolerance) \
            else "split between x and y"
        return Comparison("tie", APPROX, maxdiff=0.0, shape=c.shape, expected_shape=c.expected_shape,
                          message=f"routes dout {rule} on a tie: a valid subgradient (PyTorch splits it 0.5 / 0.5)")
    return c


@takes_tolerance
def judge_gate(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
    results = judge_scalars(case, outputs, {k: v for k, v in truth.items() if k != "tie"}, tolerance=tolerance)
    if "tie" in truth:
        results.append(judge_tie(outputs.get("tie"), truth["tie"], case.inputs["tie_dout"], tolerance))
    return results


def _gate_local(gate: str, args: list[float]) -> list[float] | None:
    """The true local gradient(s) of a gate at its forward arguments."""
    if gate == "AddGate" and len(args) == 2:
        return [1.0, 1.0]
    if gate == "MultiplyGate" and len(args) == 2:
        return [args[1], args[0]]
    if gate == "SigmoidGate" and len(args) == 1:
        s = float(torch.sigmoid(torch.tensor(args[0], dtype=torch.float64)))
        return [s * (1 - s)]
    if gate == "MaxGate" and len(args) == 2 and args[0] != args[1]:
        return [1.0, 0.0] if args[0] > args[1] else [0.0, 1.0]
    return None


def _gate_model(record: dict, tolerance):
    """d -> the gate's backward(d), from its three measured responses; None where they are not affine."""
    r = record.get("responses")
    if not isinstance(r, list) or len(r) != 3 or any(not isinstance(x, list) for x in r) or \
            len({len(x) for x in r}) != 1:
        return None
    r0, r1, r2 = (torch.tensor(x, dtype=torch.float64) for x in r)
    slope = r1 - r0
    if not _close(r2, r0 + 2 * slope, tolerance):
        return None
    return lambda d: (r0 + d * slope).tolist()


def _gate_is_wrong(record: dict, tolerance) -> bool:
    local = _gate_local(record.get("gate"), record.get("args") or [])
    model = _gate_model(record, tolerance)
    if local is None:
        return False  # nothing to judge it by (a tie, or a forward not called with numbers)
    return model is None or not (_close(model(0.0), [0.0] * len(local), tolerance) and _close(model(1.0), local, tolerance))


def _bad_gates(context, tolerance) -> list[str]:
    """The classes of the wrong gates a worked example used, over all its points."""
    gates = (context or {}).get("outputs", {}).get("_gates") if isinstance(context, dict) else None
    if not isinstance(gates, list):
        return []
    bad = []
    for point in gates:
        for record in point if isinstance(point, list) else []:
            if isinstance(record, dict) and _gate_is_wrong(record, tolerance) and record.get("gate") not in bad:
                bad.append(record["gate"])
    return bad


def _gate_hint(context, tolerance) -> str | bool:
    bad = _bad_gates(context, tolerance)
    return f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} wrong" if bad else False


def _by_class(point: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in point:
        out.setdefault(record.get("gate"), []).append(record)
    return out


def _true_model(record: dict):
    local = _gate_local(record.get("gate"), record.get("args") or [])
    return None if local is None else (lambda d: [d * v for v in local])


def _wire_simple(point: list, dout, model) -> list[float] | None:
    """(dx, dy, dz) with the gates as `model` makes them (the student's measured ones, or the true ones) rightly
    wired; `dout(d)` is what each gate after the first is fed (a variant feeds 1, a dropped upstream)."""
    g = _by_class(point)
    if len(g.get("AddGate", [])) != 1 or len(g.get("MultiplyGate", [])) != 1:
        return None
    add, mul = model(g["AddGate"][0]), model(g["MultiplyGate"][0])
    if add is None or mul is None:
        return None
    dq, dz = mul(1.0)
    dx, dy = add(dout(dq))
    return [dx, dy, dz]


def _wire_neuron(point: list, dout, model) -> list[float] | None:
    """(dw0, dw1, dw2, dx0, dx1) with the student's gates rightly wired (the template's gates, in its order)."""
    g = _by_class(point)
    if len(g.get("MultiplyGate", [])) != 2 or len(g.get("AddGate", [])) != 2 or len(g.get("SigmoidGate", [])) != 1:
        return None
    mul0, mul1 = (model(r) for r in g["MultiplyGate"])
    add0, add1 = (model(r) for r in g["AddGate"])
    sig = model(g["SigmoidGate"][0])
    if None in (mul0, mul1, add0, add1, sig):
        return None
    dz, = sig(1.0)
    ddot, dw2 = add1(dout(dz))
    da, db = add0(dout(ddot))
    dw0, dx0 = mul0(dout(da))
    dw1, dx1 = mul1(dout(db))
    return [dw0, dw1, dw2, dx0, dx1]


class _FeedOne:
    """A dout function for a wiring variant: gate call `k` (or every call, k=None) is fed 1 instead of its
    upstream gradient."""

    def __init__(self, k: int | None = None):
        self.k, self.calls = k, 0

    def __call__(self, d: float) -> float:
        self.calls += 1
        return 1.0 if self.k is None or self.calls - 1 == self.k else d


def _column(rows: list, columns: slice, shape) -> torch.Tensor:
    return torch.tensor([r[columns] for r in rows], dtype=torch.float64).reshape(shape)


def judge_wiring(wire, columns: dict[str, slice]):
    """A judge for a worked example: globally against PyTorch; where wrong, the wiring given the student's own
    gates. Informative only where it is not all zero and where feeding every gate dout = 1 (a dropped
    upstream), a mistake for this output with the true gates, is one with the student's gates too."""
    @takes_tolerance
    def judge(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
        try:
            return judge_locally(case, outputs, truth, tolerance)
        except Exception:  # noqa: malformed `_gates` from the student's process cost the local verdicts only
            return judge_scalars(case, outputs, truth, tolerance=tolerance)

    def judge_locally(case: Case, outputs: dict, truth: dict, tolerance) -> list[Comparison]:
        results = judge_scalars(case, outputs, truth, tolerance=tolerance)
        model = functools.partial(_gate_model, tolerance=tolerance)
        gates = outputs.get("_gates")
        if all(c.passed for c in results) or not isinstance(gates, list) or \
                any(not isinstance(p, list) for p in gates):
            return results
        try:
            right = [wire(p, lambda d: d, model) for p in gates]
            dropped = [wire(p, _FeedOne(), model) for p in gates]
            true_right = [wire(p, lambda d: d, _true_model) for p in gates]
            true_dropped = [wire(p, _FeedOne(), _true_model) for p in gates]
        except (TypeError, ValueError):  # a gate that returned the wrong number of values
            return results
        bad = _bad_gates({"outputs": outputs}, tolerance)
        for c in results:
            if c.passed or any(r is None for r in right + dropped):
                continue
            shape = truth[c.name].shape
            expected = _column(right, columns[c.name], shape)
            informative = bool(expected.abs().max() > 0)
            if None not in true_right + true_dropped and \
                    not _close(_column(true_right, columns[c.name], shape), _column(true_dropped, columns[c.name], shape), tolerance):
                informative = informative and not _close(expected, _column(dropped, columns[c.name], shape), tolerance)
            if informative and _close(outputs.get(c.name), expected, tolerance) and bad:
                c.local_verdict = APPROX
                c.message = f"correct; depends on {' and '.join(bad)}, which {'is' if len(bad) == 1 else 'are'} " \
                            f"wrong" + (f" ({c.message})" if c.message else "")
            else:
                c.local_verdict = WRONG
        return results
    return judge


WIRING_COLUMNS = {_wire_simple: {"dx": slice(0, 1), "dy": slice(1, 2), "dz": slice(2, 3)},
                  _wire_neuron: {"dw": slice(0, 3), "dx": slice(3, 5)}}

judge_simple = judge_wiring(_wire_simple, WIRING_COLUMNS[_wire_simple])
judge_neuron = judge_wiring(_wire_neuron, WIRING_COLUMNS[_wire_neuron])
