"""graphs assignment: backpropagation on computational graphs (CS231n lecture 4), graded against PyTorch.

Exercises (`graphs.<entry>`, the student's file `graphs.py`): the four gates (`AddGate`, `MultiplyGate`,
`MaxGate`, `SigmoidGate`), the worked examples `simple_graph` and `sigmoid_neuron`, and the vectorised
`l2_of_matvec`. Only gradients are graded: the forward passes are given in the template.

Each function is graded on its own. The worked examples use the student's gates: the driver notes the
gates they make and measures each gate's backward alone (`student_side._Recorder`), and where an answer is
wrong against PyTorch the judge asks whether the wiring is right given those gates ("correct; depends on
MultiplyGate, which is wrong"); hints that blame the wiring apply only when every gate is right.

The max gate on a tie. PyTorch's `torch.maximum` (and `Tensor.max`) splits the gradient evenly between
tied inputs (0.5 / 0.5). The course teaches "route it to one input" (either one: `x >= y` or `x > y`);
every convex split of dout between the two is a valid subgradient of max, and what matters for the
chain rule is that the two parts sum to dout. So: the ordinary MaxGate cases never contain a tie (the
inputs are at least 0.1 apart), and a dedicated `tie` check accepts all of dout to x, all to y, or
PyTorch's even split, and flags routing all of dout to *both* inputs (`max_tie`: the gradient doubles).
"""
from __future__ import annotations

COURSE_POSITION = 2  # where the course takes it up: the order front ends list the assignments in

import functools

import torch

from autograder.core.compare import APPROX, EXACT, WRONG, Comparison, compare, tolerance_for
from autograder.core.diagnose import close, scale_mistake, transposed
from autograder.core.exercise import Case, Exercise, Mistake, Seeds
from autograder.core.truth import backward
from autograder.assignments.graphs.student_side import GATE_ARITY, _number, _numbers, _pair, _t, run_gate, run_l2_of_matvec, run_sigmoid_neuron, run_simple_graph  # noqa: F401  (the grader uses some)

MODULE = "graphs"
PER_CASE = 8            # scalar inputs per gate case: one fork runs eight forward/backward pairs
LECTURE_NEURON = ([2.0, -3.0, -3.0], [-1.0, -2.0])
LECTURE_SIMPLE = (-2.0, 5.0, -4.0)
# The lecture's vectorised example: q = W x = [0.22, 0.26], f = 0.116, dx = [-0.112, 0.636].
LECTURE_MATVEC = ([[0.1, 0.5], [-0.3, 0.8]], [0.2, 0.4])


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _floats(g: torch.Generator, n: int, scale: float = 2.0) -> list[float]:
    return [round(v, 6) for v in (torch.randn(n, generator=g, dtype=torch.float64) * scale).tolist()]


def _all_seeds(seeds: Seeds, exercise_id: str, public: int, hidden: int) -> list[tuple[str, bool, int]]:
    out = [(f"public-{i}", False, s) for i, s in enumerate(seeds.public(public))]
    out += [(f"hidden-{i}", True, s) for i, s in enumerate(seeds.hidden_seeds(exercise_id, hidden))]
    return out


# The scalar exercises get Python floats, but a student may pass them through a float32 tensor (torch's
# default dtype): that rounds at 6e-8 relative, which is not a mistake. Every catalogued mistake is off by
# far more than float32's tolerance (the smallest, a misrouted max or a missing (1 - s), by 10% or more).
SCALAR_TOLERANCE = tolerance_for(torch.float32)


def _close(got, expected) -> bool:
    return close(got, expected, SCALAR_TOLERANCE)


def judge_scalars(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    return [compare(name, outputs.get(name), expected, tolerance=SCALAR_TOLERANCE) for name, expected in truth.items()]


# -- gates ---------------------------------------------------------------------------------------------------


def gate_cases(entry: str):
    def cases(seeds: Seeds, exercise_id: str) -> list[Case]:
        out = []
        for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
            g = _rng(seed)
            x, y, dout = _floats(g, PER_CASE), _floats(g, PER_CASE), _floats(g, PER_CASE, 1.5)
            if entry == "MaxGate":  # never a tie here, not even a near one: ties have their own check
                y = [b if abs(a - b) >= 0.1 else a + (0.1 + abs(b - a)) * (1 if b >= a else -1) for a, b in zip(x, y)]
            inputs = {"x": x, "dout": dout}
            if GATE_ARITY[entry] == 2:
                inputs["y"] = y
            if entry == "MaxGate":
                inputs["tie"] = _floats(g, PER_CASE)
                inputs["tie_dout"] = [d if abs(d) > 0.05 else 1.0 for d in _floats(g, PER_CASE, 1.5)]
            out.append(Case(case_id, hidden, {"gate": entry, **inputs}, info={"seed": seed},
                            label=f"{PER_CASE} random inputs"))
        return out
    return cases


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def gate_truth(case: Case) -> dict:
    """PyTorch autograd on the same gate, elementwise over the case's inputs (float64)."""
    name = case.inputs["gate"]
    x = _t(case.inputs["x"]).requires_grad_()
    dout = _t(case.inputs["dout"])
    if name == "SigmoidGate":
        backward(torch.sigmoid(x), dout)
        return {"dx": x.grad}
    y = _t(case.inputs["y"]).requires_grad_()
    out = {"AddGate": torch.add, "MultiplyGate": torch.mul, "MaxGate": torch.maximum}[name](x, y)
    backward(out, dout)
    truth = {"dx": x.grad, "dy": y.grad}
    if name == "MaxGate":
        a = _t(case.inputs["tie"]).requires_grad_()
        b = _t(case.inputs["tie"]).requires_grad_()  # equal values, two inputs: PyTorch splits dout 0.5 / 0.5
        backward(torch.maximum(a, b), _t(case.inputs["tie_dout"]))
        truth["tie"] = torch.stack([a.grad, b.grad], 1)
    return truth


def judge_tie(got, truth: torch.Tensor, dout: list[float]) -> Comparison:
    """Any split of dout with dx + dy = dout and both parts between 0 and dout is a valid subgradient:
    route-to-x, route-to-y and PyTorch's even split all pass; each row may follow its own rule."""
    c = compare("tie", got, truth, tolerance=SCALAR_TOLERANCE)
    if c.verdict in (EXACT, APPROX) or c.shape != c.expected_shape:
        return c
    g, d = torch.as_tensor(got, dtype=torch.float64), _t(dout)
    total_ok = _close(g.sum(1), d)
    t = g[:, 0] / d
    between = bool(((t >= -1e-12) & (t <= 1 + 1e-12)).all())
    if total_ok and between:
        # The distance to the nearest valid subgradient is 0: report the rule the student follows.
        rule = "to x" if _close(g[:, 1], torch.zeros_like(d)) else "to y" if _close(g[:, 0], torch.zeros_like(d)) \
            else "split between x and y"
        return Comparison("tie", APPROX, maxdiff=0.0, shape=c.shape, expected_shape=c.expected_shape,
                          message=f"routes dout {rule} on a tie: a valid subgradient (PyTorch splits it 0.5 / 0.5)")
    return c


def judge_gate(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    results = judge_scalars(case, outputs, {k: v for k, v in truth.items() if k != "tie"})
    if "tie" in truth:
        results.append(judge_tie(outputs.get("tie"), truth["tie"], case.inputs["tie_dout"]))
    return results


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


def _no_upstream(got, exp, case=None, name=None, **_) -> bool:
    """The local gradient alone: the upstream gradient dout was not multiplied in."""
    local = _local_grad(case.inputs["gate"], name, case)
    return local is not None and _close(got, local) and not _close(got, exp)


def _not_switched(got, exp, case=None, name=None, **_) -> bool:
    own = {"dx": "x", "dy": "y"}.get(name)
    return own is not None and _close(got, _t(case.inputs[own]) * _t(case.inputs["dout"]))


def _max_misrouted(got, exp, case=None, name=None, **_) -> bool:
    x, y, dout = (_t(case.inputs[k]) for k in ("x", "y", "dout"))
    to_smaller = {"dx": (x < y).double(), "dy": (y < x).double()}.get(name)
    to_both = dout
    return to_smaller is not None and (_close(got, to_smaller * dout) or _close(got, to_both))


def _max_tie(got, exp, case=None, **_) -> bool:
    dout = _t(case.inputs["tie_dout"])
    return _close(got, torch.stack([dout, dout], 1))


def _sigmoid_derivative(got, exp, case=None, **_) -> str | bool:
    x, dout = _t(case.inputs["x"]), _t(case.inputs["dout"])
    s = torch.sigmoid(x)
    for wrong, what in ((s, "s alone"), (1 - s, "(1 - s) alone"), (x * (1 - x), "x * (1 - x) with x the input"),
                        (torch.exp(-x), "exp(-x)"), ((1 + s) * s, "(1 + s) * s: the sign inside is -")):
        if _close(got, wrong * dout):
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


def exercise(entry: str, cases, driver: str, **kwargs) -> Exercise:
    """The exercise `graphs.<entry>`: its id is made here once, and its case builder gets it from here (hidden
    seeds derive from it)."""
    exercise_id = f"{MODULE}.{entry}"
    return Exercise(id=exercise_id, module=MODULE, entry=entry, cases=functools.partial(cases, exercise_id=exercise_id),
                    driver=f"autograder.assignments.graphs.student_side:{driver}", forbid_autograd=True,
                    time_limit=10.0, **kwargs)


def gate_exercise(entry: str, title: str) -> Exercise:
    return exercise(entry, gate_cases(entry), "run_gate", points=1.0, truth=gate_truth, judge=judge_gate,
                    mistakes=GATE_MISTAKES[entry], title=title)


# -- the worked examples graded on their own: the wiring, given the student's own gates ---------------------
# The driver notes every gate a worked example makes (class, forward arguments) and measures its backward
# at dout = 0, 1, 2 afterwards. A gate's backward is affine in dout (r(d) = r(0) + d * (r(1) - r(0))), so
# what the right wiring gives with the student's own gates is computable here. The function is correct on
# its own when its answer equals that; "depends on MultiplyGate, which is wrong" when a gate is wrong.

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


def _gate_model(record: dict):
    """d -> the gate's backward(d), from its three measured responses; None where they are not affine."""
    r = record.get("responses")
    if not isinstance(r, list) or len(r) != 3 or any(not isinstance(x, list) for x in r) or \
            len({len(x) for x in r}) != 1:
        return None
    r0, r1, r2 = (torch.tensor(x, dtype=torch.float64) for x in r)
    slope = r1 - r0
    if not _close(r2, r0 + 2 * slope):
        return None
    return lambda d: (r0 + d * slope).tolist()


def _gate_is_wrong(record: dict) -> bool:
    local = _gate_local(record.get("gate"), record.get("args") or [])
    model = _gate_model(record)
    if local is None:
        return False  # nothing to judge it by (a tie, or a forward not called with numbers)
    return model is None or not (_close(model(0.0), [0.0] * len(local)) and _close(model(1.0), local))


def _bad_gates(context) -> list[str]:
    """The classes of the wrong gates a worked example used, over all its points."""
    gates = (context or {}).get("outputs", {}).get("_gates") if isinstance(context, dict) else None
    if not isinstance(gates, list):
        return []
    bad = []
    for point in gates:
        for record in point if isinstance(point, list) else []:
            if isinstance(record, dict) and _gate_is_wrong(record) and record.get("gate") not in bad:
                bad.append(record["gate"])
    return bad


def _gate_hint(context) -> str | bool:
    bad = _bad_gates(context)
    return f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} wrong" if bad else False


def _by_class(point: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in point:
        out.setdefault(record.get("gate"), []).append(record)
    return out


def _true_model(record: dict):
    local = _gate_local(record.get("gate"), record.get("args") or [])
    return None if local is None else (lambda d: [d * v for v in local])


def _wire_simple(point: list, dout, model=_gate_model) -> list[float] | None:
    """(dx, dy, dz) with the student's gates (or `model`: the true ones) rightly wired; `dout(d)` is what each
    gate after the first is fed (a variant feeds 1, a dropped upstream)."""
    g = _by_class(point)
    if len(g.get("AddGate", [])) != 1 or len(g.get("MultiplyGate", [])) != 1:
        return None
    add, mul = model(g["AddGate"][0]), model(g["MultiplyGate"][0])
    if add is None or mul is None:
        return None
    dq, dz = mul(1.0)
    dx, dy = add(dout(dq))
    return [dx, dy, dz]


def _wire_neuron(point: list, dout, model=_gate_model) -> list[float] | None:
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
    def judge(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
        try:
            return judge_locally(case, outputs, truth)
        except Exception:  # noqa: malformed `_gates` from the student's process cost the local verdicts only
            return judge_scalars(case, outputs, truth)

    def judge_locally(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
        results = judge_scalars(case, outputs, truth)
        gates = outputs.get("_gates")
        if all(c.passed for c in results) or not isinstance(gates, list) or \
                any(not isinstance(p, list) for p in gates):
            return results
        try:
            right = [wire(p, lambda d: d) for p in gates]
            dropped = [wire(p, _FeedOne()) for p in gates]
            true_right = [wire(p, lambda d: d, _true_model) for p in gates]
            true_dropped = [wire(p, _FeedOne(), _true_model) for p in gates]
        except (TypeError, ValueError):  # a gate that returned the wrong number of values
            return results
        bad = _bad_gates({"outputs": outputs})
        for c in results:
            if c.passed or any(r is None for r in right + dropped):
                continue
            shape = truth[c.name].shape
            expected = _column(right, columns[c.name], shape)
            informative = bool(expected.abs().max() > 0)
            if None not in true_right + true_dropped and \
                    not _close(_column(true_right, columns[c.name], shape), _column(true_dropped, columns[c.name], shape)):
                informative = informative and not _close(expected, _column(dropped, columns[c.name], shape))
            if informative and _close(outputs.get(c.name), expected) and bad:
                c.local_verdict = APPROX
                c.message = f"correct; depends on {' and '.join(bad)}, which {'is' if len(bad) == 1 else 'are'} " \
                            f"wrong" + (f" ({c.message})" if c.message else "")
            else:
                c.local_verdict = WRONG
        return results
    return judge


def _upstream_dropped(wire, calls: tuple[str, ...]):
    """A matcher: the answer is the right wiring with one gate fed 1 instead of its upstream gradient."""
    def matches(got, exp, case=None, name=None, context=None, **_):
        gates = (context or {}).get("outputs", {}).get("_gates")
        if _bad_gates(context) or not isinstance(gates, list):
            return False
        columns = WIRING_COLUMNS[wire][name]
        for k, call in enumerate(calls):
            rows = [wire(p, _FeedOne(k)) for p in gates]
            if None not in rows and _close(got, _column(rows, columns, exp.shape)):
                return f"`{call}` is fed 1.0"
        return False
    return matches


WIRING_COLUMNS = {_wire_simple: {"dx": slice(0, 1), "dy": slice(1, 2), "dz": slice(2, 3)},
                  _wire_neuron: {"dw": slice(0, 3), "dx": slice(3, 5)}}
UPSTREAM_DROPPED = "a gate's backward must be fed the gradient that came back to its output (its upstream), " \
                   "not 1.0: only the last gate starts from df/df = 1"


judge_simple = judge_wiring(_wire_simple, WIRING_COLUMNS[_wire_simple])
judge_neuron = judge_wiring(_wire_neuron, WIRING_COLUMNS[_wire_neuron])


def simple_graph_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
        g = _rng(seed)
        xs, ys, zs = _floats(g, PER_CASE), _floats(g, PER_CASE), _floats(g, PER_CASE)
        if seed == 0:  # the lecture's point first: its numbers are the ones on the slide
            xs[0], ys[0], zs[0] = LECTURE_SIMPLE
        out.append(Case(case_id, hidden, {"x": xs, "y": ys, "z": zs}, info={"seed": seed},
                        label="the lecture's point and random inputs" if seed == 0 else f"{PER_CASE} random inputs"))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def simple_graph_truth(case: Case) -> dict:
    x, y, z = (_t(case.inputs[k]).requires_grad_() for k in ("x", "y", "z"))
    ((x + y) * z).sum().backward()
    return {"dx": x.grad, "dy": y.grad, "dz": z.grad}


def _simple_not_switched(got, exp, case=None, name=None, context=None, **_) -> bool:
    if _bad_gates(context):  # a wrong gate explains it: the wiring is not to blame
        return False
    x, y, z = (_t(case.inputs[k]) for k in ("x", "y", "z"))
    own = {"dz": z, "dx": x + y, "dy": x + y}.get(name)  # dz = z, or dx = q: mul did not switch
    return own is not None and _close(got, own)


def _simple_no_chain(got, exp, case=None, name=None, context=None, **_) -> bool:
    return not _bad_gates(context) and name in ("dx", "dy") and _close(got, torch.ones(len(case.inputs["x"]), dtype=torch.float64))


SIMPLE_MISTAKES = (
    Mistake("gate_wrong", "a gate this function uses is wrong (its own exercise names the mistake): fix the gate "
                          "first", lambda got, exp, context=None, **_: _gate_hint(context)),
    Mistake("upstream_dropped", UPSTREAM_DROPPED, _upstream_dropped(_wire_simple, ("add.backward",))),
    Mistake("not_switched", "mul switches: df/dz is the other input q = x + y, and df/dq is z",
            _simple_not_switched),
    Mistake("no_upstream", "add distributes the UPSTREAM gradient: dx = dy = df/dq = z, not the add gate's local "
                           "gradient 1 (chain rule: local * upstream)", _simple_no_chain),
)


def neuron_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
        g = _rng(seed)
        ws = [_floats(g, 3) for _ in range(PER_CASE)]
        xs = [_floats(g, 2) for _ in range(PER_CASE)]
        if seed == 0:
            ws[0], xs[0] = list(LECTURE_NEURON[0]), list(LECTURE_NEURON[1])
        out.append(Case(case_id, hidden, {"w": ws, "x": xs}, info={"seed": seed},
                        label="the lecture's neuron and random inputs" if seed == 0 else f"{PER_CASE} random inputs"))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def neuron_truth(case: Case) -> dict:
    w, x = _t(case.inputs["w"]).requires_grad_(), _t(case.inputs["x"]).requires_grad_()
    torch.sigmoid(w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2]).sum().backward()
    return {"dw": w.grad, "dx": x.grad}


def _neuron_parts(case: Case):
    w, x = _t(case.inputs["w"]), _t(case.inputs["x"])
    z = w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2]
    s = torch.sigmoid(z)
    ones = torch.ones(len(z), 1, dtype=torch.float64)
    local = {"dw": torch.cat([x, ones], 1), "dx": w[:, :2]}  # d(z)/d(w), d(z)/d(x)
    return w, x, z, s, local


def _neuron_sigmoid(got, exp, case=None, name=None, context=None, **_) -> str | bool:
    if _bad_gates(context):
        return False
    w, x, z, s, local = _neuron_parts(case)
    for wrong, what in ((s, "s alone"), (1 - s, "(1 - s) alone"), (z * (1 - z), "z * (1 - z) with z the input"),
                        (torch.exp(-z), "exp(-z)"), ((1 + s) * s, "(1 + s) * s: the sign inside is -")):
        if _close(got, local[name] * wrong[:, None]):
            return f"it looks like {what}"
    return False


def _neuron_not_switched(got, exp, case=None, name=None, context=None, **_) -> bool:
    if _bad_gates(context):
        return False
    w, x, z, s, local = _neuron_parts(case)
    ones = torch.ones(len(z), 1, dtype=torch.float64)
    own = {"dw": torch.cat([w[:, :2], ones], 1), "dx": x}[name]
    return _close(got, own * (s * (1 - s))[:, None])


def _neuron_no_upstream(got, exp, case=None, name=None, context=None, **_) -> bool:
    """The local gradients of the dot product alone (every gate right): the sigmoid's factor never reached them."""
    if _bad_gates(context):
        return False
    w, x, z, s, local = _neuron_parts(case)
    return _close(got, local[name])


NEURON_MISTAKES = (
    Mistake("gate_wrong", "a gate this function uses is wrong (its own exercise names the mistake): fix the gate "
                          "first", lambda got, exp, context=None, **_: _gate_hint(context)),
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


# -- the vectorised example -----------------------------------------------------------------------------------

def matvec_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 3, 4):
        g = _rng(seed)
        if seed == 0:
            W, x, dtype = _t(LECTURE_MATVEC[0]), _t(LECTURE_MATVEC[1]), torch.float64
        else:
            # a square W on public seed 2 so that a transposed dW has the right shape and wrong values
            m = 4 if seed == 2 else int(torch.randint(2, 9, (1,), generator=g))
            n = 4 if seed == 2 else int(torch.randint(2, 9, (1,), generator=g))
            if n == m and seed != 2:
                n += 1
            dtype = torch.float32 if seed % 2 else torch.float64
            W = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
            x = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
        label = "the lecture's example" if seed == 0 else f"{str(dtype).replace('torch.', '')}, W {tuple(W.shape)}"
        out.append(Case(case_id, hidden, {"W": W, "x": x}, info={"seed": seed}, label=label))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def matvec_truth(case: Case) -> dict:
    W, x = case.inputs["W"].clone().requires_grad_(), case.inputs["x"].clone().requires_grad_()
    ((W @ x) ** 2).sum().backward()
    return {"dW": W.grad, "dx": x.grad}


def _half(got, exp, **_) -> bool:
    """dq = q instead of 2q: only one branch of q * q counted."""
    return close(got, exp / 2)


def _dx_untransposed(got, exp, case=None, name=None, **_) -> bool:
    W, x = case.inputs["W"], case.inputs["x"]
    if name != "dx" or W.shape[0] != W.shape[1]:
        return False
    return close(got, W @ (2 * W @ x))


def _shape(got, exp, **_) -> str | bool:
    g = torch.as_tensor(got) if not isinstance(got, torch.Tensor) else got
    if tuple(g.shape) == tuple(exp.shape):
        return False
    if g.numel() == exp.numel() and close(g.reshape(exp.shape), exp):
        return f"the values are right but the shape is {tuple(g.shape)}, not {tuple(exp.shape)}: reshape it"
    return f"shape {tuple(g.shape)}, not {tuple(exp.shape)}"


MATVEC_MISTAKES = (
    Mistake("transposed", "transposed: dW = outer(dq, x) has W's shape (m, n) (dW[i, j] = dq[i] * x[j]), and "
                          "dx = W.T @ dq; the shapes tell you which way round", _dx_untransposed),
    Mistake("transposed", "transposed: dW = outer(dq, x) has W's shape (m, n) (dW[i, j] = dq[i] * x[j]); the "
                          "shapes tell you which way round",
            lambda got, exp, **_: transposed(got, exp)),
    Mistake("shape", "the lecture's sanity check: a gradient has exactly the shape of its variable (dW like W, "
                     "dx like x)", _shape),
    Mistake("missing_branch", "q = W x fans out: f = sum(q * q) uses q twice, and the gradients of the two "
                              "branches add, so df/dq = 2q, not q", _half),
    scale_mistake(lambda case: {"m": case.inputs["W"].shape[0], "n": case.inputs["W"].shape[1]}),
)


EXERCISES = [
    gate_exercise("AddGate", "add gate: distributes"),
    gate_exercise("MultiplyGate", "multiply gate: switches"),
    gate_exercise("MaxGate", "max gate: routes (and ties)"),
    gate_exercise("SigmoidGate", "sigmoid gate"),
    exercise("simple_graph", simple_graph_cases, "run_simple_graph", points=2.0, truth=simple_graph_truth,
             judge=judge_simple, mistakes=SIMPLE_MISTAKES, title="f = (x + y) z"),
    exercise("sigmoid_neuron", neuron_cases, "run_sigmoid_neuron", points=3.0, truth=neuron_truth,
             judge=judge_neuron, mistakes=NEURON_MISTAKES, title="the 2-D sigmoid neuron"),
    exercise("l2_of_matvec", matvec_cases, "run_l2_of_matvec", points=3.0, truth=matvec_truth,
             mistakes=MATVEC_MISTAKES, title="f = ||W x||^2, vectorised"),
]

