"""micrograd assignment: the scalar autograd engine (`micrograd/engine.py`) and its `nn` (`micrograd/nn.py`).

Expressions are data: a program is a list of leaf values and a list of instructions `[op, operand, ...]`
where an operand is a node index (`n`) or a constant (`c`). The same interpreter (`run_program`) builds
the graph from the student's `Value`s in the student's process and from float64 tensors in the grader,
so the truth is PyTorch autograd on exactly the student's expression.

Drivers run in the student's process with `torch` blocked: they only use the student's classes and
return plain floats and lists. Every sub-part is guarded (`_attempt`), so a stub, an exception, a
`sys.exit()` or an endless loop in one backward costs that check only.

Diagnosis: the engine drivers also return `_probe`, small fixed graphs that isolate each way a
scalar engine goes wrong (one op's local derivative, `=` for `+=`, the seed, the visiting order).
A wrong answer elsewhere is explained by the first mistake the probe shows.
"""
from __future__ import annotations

import functools
import gc
import math
import os
import random
import signal
import traceback

import torch

from ...compare import ERROR, NOT_IMPLEMENTED_VALUE, TIMEOUT, WRONG, Comparison, NotImplementedMarker, compare
from ...diagnose import close
from ...exercise import Case, Exercise, Mistake, Seeds
from ...truth import backward
from .student_side import ENGINE, NN, NN_CHECKS, OPS, PART_SECONDS, PROBE_LOCAL, PROBE_VALUES, SHOWN, _NotANumber, _OutOfTime, _attempt, _describe, _graphs, _num, _one_op, _probe, _propagate, _root, _value_class, deep_chain_driver, expression_driver, graphs_driver, nn_driver, ops_driver, run_program  # noqa: F401  (the grader uses some)

NO_TORCH = "the scalar engine is built from Python floats and `math`; PyTorch is only the grader's reference"

# -- expressions as data ----------------------------------------------------------------------------------

BASE_OPS = ("add", "mul", "pow", "exp", "log", "tanh", "relu", "sigmoid")
# Derived operations have no backward of their own: they are built from these base operations.
BUILT_FROM = {"neg": ("mul",), "sub": ("add", "mul"), "div": ("mul", "pow"), "addc": ("add",), "radd": ("add",),
              "rsub": ("add", "mul"), "rmul": ("mul",), "rdiv": ("mul", "pow")}
DERIVATIVE = {
    "add": "d(a+b)/da = d(a+b)/db = 1: both inputs get out.grad",
    "mul": "d(a*b)/da = b.data and d(a*b)/db = a.data",
    "pow": "d(a**k)/da = k * a.data**(k-1)",
    "exp": "d(exp a)/da = exp(a), which is out.data",
    "log": "d(log a)/da = 1 / a.data",
    "tanh": "d(tanh a)/da = 1 - t**2 with t = out.data",
    "relu": "d relu(a)/da = 1 where out.data > 0, else 0",
    "sigmoid": "d sigmoid(a)/da = s * (1 - s) with s = out.data",
}


def torch_program(program: dict) -> tuple[list, dict]:
    """PyTorch float64 autograd on a program: (nodes, {value, leaf grads, node grads})."""
    nodes = run_program(program, lambda v: torch.tensor(float(v), dtype=torch.float64, requires_grad=True))
    for node in nodes[len(program["leaves"]):]:
        node.retain_grad()
    out = nodes[-1]
    out.backward()
    grads = [0.0 if n.grad is None else float(n.grad) for n in nodes]
    return nodes, {"value": out.item(), "grads": grads}


# -- the student's side (drivers) ------------------------------------------------------------------------


# -- probe: fixed inputs, and its truth ------------------------------------------------------------------


def torch_op(name: str, spec: dict) -> list[float]:
    """The truth for `_one_op`: [out, a.grad(, b.grad)] with the pre-set grads added."""
    kinds, op = OPS[name]
    a = torch.tensor(float(spec["a"]), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(float(spec.get("b", 0.0)), dtype=torch.float64, requires_grad=True)
    leaves = [a] if kinds.count("n") == 1 else [a, b]
    args, it = [], iter(leaves)
    for kind in kinds:
        args.append(spec["const"] if kind == "c" else next(it))
    out = op(*args)
    backward(out, torch.tensor(float(spec["g"]), dtype=torch.float64))
    pre = [spec["a_grad"], spec["b_grad"]]
    return [out.item()] + [t.grad.item() + p for t, p in zip(leaves, pre)]


def torch_graphs(v: dict) -> dict:
    """The truth for `_graphs`."""
    def leaf(name):
        return torch.tensor(float(v[name]), dtype=torch.float64, requires_grad=True)

    def grads(out, nodes):
        for n in nodes:
            if not n.is_leaf:
                n.retain_grad()
        out.backward()
        return [float(n.grad) for n in nodes]

    x, y, z = leaf("x"), leaf("y"), leaf("z")
    out = x * y + z
    out.retain_grad()
    seed = grads(out, [out, x, y, z])
    x, w, u, c = leaf("x"), leaf("w"), leaf("u"), leaf("z")
    chain = grads(((x * w).tanh() * u + c).exp(), [x, w, u, c])
    a = leaf("a")
    add_twice = grads(a + a, [a])
    a = leaf("a")
    mul_twice = grads(a * a, [a])
    a = leaf("a")
    b = a + a
    b.retain_grad()
    nonleaf = grads(b + b, [b, a])
    a, x = leaf("a"), leaf("x")
    b = a * x
    c = b.tanh()
    d = c * b
    nodes = [d, c, b]
    for n in nodes:
        n.retain_grad()
    diamond = grads(d + b, [d, c, b, a, x])
    return {"seed": seed, "chain": chain, "a + a": add_twice, "a * a": mul_twice,
            "b + b (b = a + a)": nonleaf, "diamond": diamond}


@functools.lru_cache(maxsize=1)
def probe_truth() -> dict:
    truth = {"local": {f"{name}{i}": torch_op(name, spec)
                       for name, specs in PROBE_LOCAL.items() for i, spec in enumerate(specs)}}
    truth.update(torch_graphs(PROBE_VALUES))
    return truth


# -- diagnosis ---------------------------------------------------------------------------------------------

def _usable(got) -> bool:
    return isinstance(got, (list, float, int)) and not isinstance(got, bool)


def local_mistake(name: str, spec: dict, got, expected) -> tuple[str, str] | None:
    """Which catalogued mistake explains a wrong [out, a.grad(, b.grad)] of one op, with a detail."""
    if not _usable(got) or len(got) != len(expected) or close(got, expected):
        return None
    shown = SHOWN[name]
    if name not in BASE_OPS:
        return None
    if not close(got[0], expected[0]):
        return None  # the forward pass is wrong: nothing a backward mistake explains
    pre = [spec["a_grad"], spec["b_grad"]][: len(got) - 1]
    local = [(e - p) / spec["g"] for e, p in zip(expected[1:], pre)]  # the true local derivatives
    grads = got[1:]
    if close(grads, [l * spec["g"] for l in local]):
        return "overwrite_not_accumulate", f"the _backward of {shown} replaces the gradient its inputs already hold"
    a, g, pa = spec["a"], spec["g"], pre[0]
    from_input = {"tanh": 1 - a**2, "exp": a, "sigmoid": a * (1 - a)}.get(name)
    if from_input is not None and close(grads[0], pa + from_input * g):
        return "uses_input_not_output", f"{shown}: {DERIVATIVE[name]}, not of a.data"
    if close(grads, [p + l for p, l in zip(pre, local)]):
        return "wrong_local_derivative", f"{shown}: the chain rule multiplies the local derivative by out.grad"
    return "wrong_local_derivative", f"{shown}: {DERIVATIVE[name]}"


# The base operations each small graph is built from, and how a student can picture the graph.
GRAPH_OPS = {"seed": ("add", "mul"), "chain": ("add", "mul", "tanh", "exp"), "a + a": ("add",), "a * a": ("mul",),
             "b + b (b = a + a)": ("add",), "diamond": ("add", "mul", "tanh")}
GRAPH_SHOWN = {"chain": "exp(tanh(x*w)*u + z)", "diamond": "b = a*x; out = tanh(b)*b + b",
               "b + b (b = a + a)": "b = a + a; c = b + b"}
# Order probes need the ops that build them; every engine probe includes these.
ORDER_OPS = ("add", "mul", "tanh", "exp")


def engine_mistake(probe, ops: tuple[str, ...] = BASE_OPS) -> tuple[str, str] | None:
    """The first mistake the probe shows, in the order a student should fix them: the local derivative of
    an op this graph uses (`ops`), the seed, accumulation, the visiting order. A probe graph is evidence
    about backward() only where every op it is built from is right on its own."""
    if not isinstance(probe, dict):
        return None
    truth = probe_truth()
    local = probe.get("local") if isinstance(probe.get("local"), dict) else {}
    bad_ops: dict[str, tuple[str, str]] = {}
    for name, specs in PROBE_LOCAL.items():
        for i, spec in enumerate(specs):
            found = local_mistake(name, spec, local.get(f"{name}{i}"), truth["local"][f"{name}{i}"])
            if found and name not in bad_ops:
                bad_ops[name] = found
    for name in PROBE_LOCAL:
        if name in ops and name in bad_ops:
            return bad_ops[name]

    def wrong(part):
        got = probe.get(part)
        return _usable(got) and not close(got, truth[part]) and not any(op in bad_ops for op in GRAPH_OPS[part])

    seed = probe.get("seed")
    if wrong("seed") and len(seed) == 4 and seed[0] != 1 and all(s == 0 for s in seed[1:]):
        return "seed_grad_missing", "after backward() every gradient is 0"
    for part in ("a + a", "a * a"):
        if wrong(part):
            return "overwrite_not_accumulate", f"in `{part}`, a.grad is {probe[part][0]:g} instead of " \
                                               f"{truth[part][0]:g}"
    for part in ("b + b (b = a + a)", "diamond", "chain"):
        if wrong(part):
            return "no_topological_order", f"`{GRAPH_SHOWN[part]}` gets wrong gradients although each of its " \
                                           "operations is right on its own"
    return None


def _engine_matcher(mistake_id: str):
    """A catalogue matcher: this mistake is the one the probe shows, among the ops the check's graph uses."""
    def matches(got, exp, case=None, name=None, context=None, **_):
        ops = GRAPH_OPS.get(name) or (tuple(case.info.get("ops", BASE_OPS)) if case is not None else BASE_OPS)
        found = engine_mistake((context or {}).get("outputs", {}).get("_probe"), ops)
        return found[1] if found and found[0] == mistake_id else False
    return matches


def _op_matcher(mistake_id: str):
    """micrograd.ops: a base op by its own answer; a derived op by the base ops it is built from."""
    def matches(got, exp, case=None, name=None, context=None, **_):
        key = next((k for k, shown in SHOWN.items() if shown == name), None)
        if key is None or case is None:
            return False
        if key in BASE_OPS:
            found = local_mistake(key, case.inputs["ops"][key], got, exp.tolist() if hasattr(exp, "tolist") else exp)
        else:
            found = engine_mistake((context or {}).get("outputs", {}).get("_probe"), BUILT_FROM[key])
            if found:
                found = (found[0], f"{name} is built from {' and '.join(BUILT_FROM[key])}: {found[1]}")
        return found[1] if found and found[0] == mistake_id else False
    return matches


HINTS = {
    "overwrite_not_accumulate": "`=` where `+=` is needed: a value used more than once gets one gradient "
                                "contribution per use, and they add up (self.grad += ...)",
    "wrong_local_derivative": "the local derivative of an operation is wrong",
    "uses_input_not_output": "the backward uses the input (self.data) where the derivative is a function "
                             "of the output (out.data)",
    "no_topological_order": "backward() must call each node's _backward only after every node that uses it: "
                            "build a topological order of the graph and walk it in reverse",
    "seed_grad_missing": "backward() must start by setting the output's gradient to 1 (d out/d out = 1)",
    "recursion_limit": "a recursive topological sort exceeds Python's recursion limit (~1,000) on a deep graph: "
                       "build the order with an explicit stack (a while loop) instead",
}
MISTAKE_IDS = tuple(HINTS)


def _catalogue(matcher) -> tuple[Mistake, ...]:
    return tuple(Mistake(mid, HINTS[mid], matcher(mid) if mid != "recursion_limit" else None) for mid in MISTAKE_IDS)


ENGINE_MISTAKES = _catalogue(_engine_matcher)
OP_MISTAKES = _catalogue(_op_matcher)

# -- judging ---------------------------------------------------------------------------------------------

def _failure(name: str, got: dict, expected, hidden: bool) -> Comparison:
    verdict = {"timeout": TIMEOUT, "wrong": WRONG}.get(got.get("failure"), ERROR)
    message = str(got.get("message", ""))[:300]
    if hidden and verdict == ERROR and got.get("short") != message:  # the student's text could print inputs
        message = f"{str(got.get('short', ''))[:300]} (details withheld for hidden cases)"
    shape = tuple(getattr(expected, "shape", ()))
    mistake = "recursion_limit" if message.startswith("RecursionError") else None
    return Comparison(name, verdict, expected_shape=shape, message=message, mistake=mistake)


def judge(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """`compare` every check; a part that failed in the student's process keeps its own one-line reason."""
    results = []
    for name, expected in truth.items():
        got = outputs.get(name) if isinstance(outputs, dict) else None
        if isinstance(got, dict) and "failure" in got:
            results.append(_failure(name, got, expected, case.hidden))
        else:
            results.append(compare(name, got, expected))
    return results


def op_partials(program: dict) -> list[list[tuple[int, float]]]:
    """For each op node, [(operand node, d node / d operand)] at the true values: the local derivatives."""
    with torch.no_grad():
        values = [t.item() for t in run_program(program, lambda v: torch.tensor(float(v), dtype=torch.float64))]
    partials = []
    for name, *args in program["ops"]:
        kinds, op = OPS[name]
        operands = [torch.tensor(values[a], dtype=torch.float64, requires_grad=True) if k == "n" else a
                    for k, a in zip(kinds, args)]
        nodes = [(a, t) for k, a, t in zip(kinds, args, operands) if k == "n"]
        grads = torch.autograd.grad(op(*operands), [t for _, t in nodes])
        partials.append([(a, g.item()) for (a, _), g in zip(nodes, grads)])
    return partials


def judge_expression(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """Globally against PyTorch, and locally (cascade-free): each node's gradient against the local
    derivatives applied to the student's own gradients of the nodes that use it. The first node, from the
    output, that is wrong on its own names the operation whose backward is wrong."""
    results = judge(case, outputs, truth)
    program = case.inputs["program"]
    n_leaves, n_nodes = len(program["leaves"]), len(program["leaves"]) + len(program["ops"])
    out, leaves, inner = (outputs.get(k) for k in ("output", "leaf grads", "node grads"))
    if not (_usable(out) and _usable(leaves) and _usable(inner) and len(out) == 2 and
            len(leaves) + len(inner) + 1 == n_nodes):
        return results
    grads = list(leaves) + list(inner) + [out[1]]
    expected = [0.0] * n_nodes
    expected[-1] = 1.0
    for j, parts in enumerate(op_partials(program), start=n_leaves):
        for a, d in parts:
            expected[a] += d * grads[j]
    scale = max(abs(g) for g in truth["leaf grads"].tolist() + truth["node grads"].tolist() + [1.0])
    for c in results:
        span = {"leaf grads": range(0, n_leaves), "node grads": range(n_leaves, n_nodes - 1),
                "output": range(n_nodes - 1, n_nodes)}[c.name]
        if c.verdict in (ERROR, TIMEOUT, "not_implemented"):
            continue
        if c.name == "output":
            c.local_verdict = compare(c.name, out[1], 1.0).verdict
            continue
        c.local_verdict = compare(c.name, [grads[i] for i in span], [expected[i] for i in span], scale=scale).verdict
    wrong_here = [i for i in range(n_nodes - 2, -1, -1)
                  if not close(grads[i], expected[i], scale=scale)]
    if wrong_here and not case.hidden:
        partials = op_partials(program)

        def users(i):
            return {program["ops"][j][0] for j, parts in enumerate(partials) if any(a == i for a, _ in parts)}
        common = set.intersection(*(users(i) for i in wrong_here))
        named = " / ".join(f"`{SHOWN[u]}`" for u in sorted(common or users(wrong_here[0])))
        note = (f"every node whose gradient is wrong on its own is an input of {named}: check its backward"
                if common else f"first wrong step from the output: a node used by {named}")
        where = "leaf grads" if wrong_here[0] < n_leaves else "node grads"
        for c in results:
            if c.name == where and c.verdict == WRONG:
                c.message = f"{note}; {c.message}"
    return results


def judge_nn(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    results = judge(case, outputs, truth)
    for c in results:
        got = outputs.get(c.name)
        if c.name.startswith("SGD") and c.verdict == WRONG and _usable(got) and len(got) == 2 and got[1] >= got[0]:
            c.message = f"the loss did not go down ({got[0]:.6g} -> {got[1]:.6g}); {c.message}"
    return results


# -- cases and truths -----------------------------------------------------------------------------------

def _case(cases: list, hidden: bool, inputs: dict, ops, label: str) -> Case:
    """A case whose probe covers `ops`, the base operations its graph is built from."""
    probe_ops = sorted(set(ops) | set(ORDER_OPS))
    return Case(f"{'hidden' if hidden else 'public'}-{len(cases)}", hidden, {**inputs, "probe_ops": probe_ops},
                {"ops": tuple(ops)}, label=label)


def _seeds(seeds: Seeds, exercise_id: str, public: int, hidden: int) -> list[tuple[int, bool]]:
    return [(s, False) for s in seeds.public(public)] + [(s, True) for s in seeds.hidden_seeds(exercise_id, hidden)]


def _away_from_zero(rng: random.Random, low: float, high: float, gap: float = 0.2) -> float:
    x = rng.uniform(low, high)
    return x if abs(x) >= gap else math.copysign(gap, x if x else 1.0) + x


def op_spec(rng: random.Random, name: str, index: int) -> dict:
    """Inputs for one op inside its domain and away from kinks; the relu side alternates with `index`."""
    spec = dict(a=_away_from_zero(rng, -2, 2), b=_away_from_zero(rng, -2, 2), const=round(rng.uniform(-3, 3), 2),
                a_grad=rng.uniform(-1, 1), b_grad=rng.uniform(-1, 1), g=rng.choice((-1, 1)) * rng.uniform(0.5, 2))
    if name == "log":
        spec["a"] = rng.uniform(0.2, 3)
    elif name == "pow":
        spec["const"] = rng.choice((2, 3, -1, 0.5, -1.5, 2.5))
        if spec["const"] != int(spec["const"]):
            spec["a"] = abs(spec["a"])
    elif name == "relu":
        spec["a"] = abs(spec["a"]) * (1 if index % 2 == 0 else -1)
    elif name in ("tanh", "sigmoid"):
        spec["a"] = rng.uniform(-3, 3)
    elif name in ("rdiv",):
        spec["a"] = _away_from_zero(rng, -2, 2, 0.4)
    if spec["const"] == 0:
        spec["const"] = 1.5
    return spec


def ops_cases(seeds: Seeds) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, "micrograd.ops", 3, 4):
        rng = random.Random(seed)
        specs = {name: op_spec(rng, name, seed) for name in OPS}
        case = _case(cases, hidden, {"ops": specs}, ("add", "mul", "pow"),
                     label="each operation at random inputs, pre-set input grads, out.grad != 1")
        case.inputs["probe_ops"] = ["add", "mul", "pow"]  # the derived ops' parts; no graphs are probed
        cases.append(case)
    return cases


def ops_truth(case: Case) -> dict:
    return {SHOWN[name]: torch.tensor(torch_op(name, spec), dtype=torch.float64)
            for name, spec in case.inputs["ops"].items()}


def graph_values(rng: random.Random) -> dict:
    return {k: round(_away_from_zero(rng, -1.5, 1.5), 4) for k in PROBE_VALUES}


def graph_cases(exercise_id: str, parts: tuple[str, ...]):
    def cases(seeds: Seeds) -> list[Case]:
        out = []
        for seed, hidden in _seeds(seeds, exercise_id, 2, 3):
            values = PROBE_VALUES if seed == 0 else graph_values(random.Random(seed))
            out.append(_case(out, hidden, {"values": values, "parts": list(parts)},
                             ("add", "mul", "tanh", "exp"), label="small graphs, random leaf values"))
        return out
    return cases


def graph_truth(case: Case) -> dict:
    truth = torch_graphs(case.inputs["values"])
    return {name: torch.tensor(truth[name], dtype=torch.float64) for name in case.inputs["parts"]}


# Operand constraints keep every case inside the ops' domains, away from relu's kink, and of moderate size.
def _valid(name: str, args: list[float], result: float) -> bool:
    a = args[0] if OPS[name][0][0] == "n" else args[1]
    if not math.isfinite(result) or abs(result) > 50:
        return False
    if name == "log":
        return a > 0.1
    if name == "relu":
        return abs(a) > 0.05
    if name == "exp":
        return a < 3
    if name == "pow":
        k = args[1]
        return (k == int(k) or a > 0.1) and (k > 0 or abs(a) > 0.3)
    if name == "div":
        return abs(args[1]) > 0.3
    if name == "rdiv":
        return abs(a) > 0.3
    return True


def random_program(rng: random.Random, n_leaves: int, n_ops: int) -> dict:
    """A random expression graph with fan-out: operands are mostly recent nodes, sometimes any earlier
    one; the output is the sum of every node nothing else uses, so every node reaches it."""
    leaves = [round(rng.uniform(-2, 2), 4) for _ in range(n_leaves)]
    values = list(leaves)
    ops: list[list] = []
    used = [0] * n_leaves
    names = list(OPS)
    while len(ops) < n_ops:
        name = rng.choice(names)
        kinds = OPS[name][0]
        args = []
        for kind in kinds:
            if kind == "c":
                args.append(rng.choice((2, 3, -1, 0.5, 1.5)) if name == "pow" else round(rng.uniform(-2, 2), 2) or 1.0)
            else:
                recent = rng.random() < 0.6
                args.append(rng.randrange(max(0, len(values) - 3), len(values)) if recent else rng.randrange(len(values)))
        operands = [values[a] if k == "n" else a for k, a in zip(kinds, args)]
        with torch.no_grad():
            result = float(OPS[name][1](*(torch.tensor(float(x), dtype=torch.float64) if k == "n" else x
                                          for k, x in zip(kinds, operands))))
        if not _valid(name, operands, result):
            continue
        ops.append([name, *args])
        for k, a in zip(kinds, args):
            if k == "n":
                used[a] += 1
        values.append(result)
        used.append(0)
    sinks = [i for i in range(n_leaves, len(values)) if used[i] == 0] + [i for i in range(n_leaves) if used[i] == 0]
    total = sinks[0]
    for s in sinks[1:]:
        ops.append(["add", total, s])
        values.append(values[total] + values[s])
        total = len(values) - 1
    return {"leaves": leaves, "ops": ops}


def expression_cases(seeds: Seeds) -> list[Case]:
    cases = []
    public_sizes = [(3, 12), (4, 20), (5, 30)]
    for seed, hidden in _seeds(seeds, "micrograd.expressions", 3, 5):
        rng = random.Random(seed)
        n_leaves, n_ops = (rng.randint(3, 6), rng.randint(15, 40)) if hidden else public_sizes[seed % 3]
        program = random_program(rng, n_leaves, n_ops)
        used = tuple(sorted({op for name, *_ in program["ops"] for op in (BUILT_FROM.get(name) or (name,))}))
        cases.append(_case(cases, hidden, {"program": program}, used, label=f"{n_leaves} leaves, {len(program['ops'])} operations"))
    return cases


def expression_truth(case: Case) -> dict:
    program = case.inputs["program"]
    _, t = torch_program(program)
    n = len(program["leaves"])
    f64 = functools.partial(torch.tensor, dtype=torch.float64)
    return {"output": f64([t["value"], 1.0]), "leaf grads": f64(t["grads"][:n]), "node grads": f64(t["grads"][n:-1])}


CHAIN_STEPS = 50_000  # two nodes per step: 100,000 operation nodes between x and the output


def deep_chain_cases(seeds: Seeds) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, "micrograd.deep_chain", 1, 1):
        g = torch.Generator().manual_seed(seed)
        # multipliers near 1 keep the product of 50,000 of them (the gradient) of order 1
        m = (1 + 2e-3 * (torch.rand(CHAIN_STEPS, generator=g, dtype=torch.float64) - 0.5)).tolist()
        c = (1e-3 * torch.randn(CHAIN_STEPS, generator=g, dtype=torch.float64)).tolist()
        x = float(torch.rand((), generator=g, dtype=torch.float64)) + 0.5
        cases.append(_case(cases, hidden, {"x": x, "m": m, "c": c}, ("add", "mul"), label=f"a chain of {2 * CHAIN_STEPS:,} nodes"))
    return cases


def deep_chain_truth(case: Case) -> dict:
    """PyTorch autograd on the same chain, in the same order of operations (1 s: computed once per chain)."""
    return {"out, x.grad": torch.tensor(_chain_truth(case.inputs["x"], tuple(case.inputs["m"]),
                                                     tuple(case.inputs["c"])), dtype=torch.float64)}


@functools.lru_cache(maxsize=4)
def _chain_truth(x0: float, ms: tuple, cs: tuple) -> tuple[float, float]:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    v = x
    for m, c in zip(ms, cs):
        v = v * m + c
    v.backward()
    return v.item(), x.grad.item()


# Karpathy's lecture dataset for the first public case; the others are random.
LECTURE_XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
LECTURE_YS = [[1.0], [-1.0], [-1.0], [1.0]]


def nn_cases(seeds: Seeds) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, "micrograd.nn", 2, 2):
        rng = random.Random(seed)
        if seed == 0:
            nin, nouts, xs, ys = 3, [4, 4, 1], LECTURE_XS, LECTURE_YS
        else:
            nin = rng.randint(2, 4)
            nouts = [rng.randint(2, 6) for _ in range(rng.randint(1, 2))] + [rng.randint(1, 3)]
            xs = [[round(rng.uniform(-2, 2), 3) for _ in range(nin)] for _ in range(rng.randint(3, 6))]
            ys = [[rng.choice((-1.0, 1.0)) for _ in range(nouts[-1])] for _ in xs]
        sizes = [nin] + nouts
        params = [[[rng.uniform(-1, 1) for _ in range(sizes[i])] + [rng.uniform(-0.5, 0.5)]
                   for _ in range(sizes[i + 1])] for i in range(len(nouts))]
        inputs = {"nin": nin, "nouts": nouts, "params": params, "xs": xs, "ys": ys, "lr": 0.05}
        # a small enough step always lowers the loss; halve it until it does on this data
        while True:
            t = nn_reference(inputs)
            if t["loss_after"] < t["loss_before"] or inputs["lr"] < 1e-6:
                break
            inputs["lr"] /= 2
        cases.append(_case(cases, hidden, inputs, ("add", "mul", "relu", "pow"),
                           label=f"MLP({nin}, {nouts}) on {len(xs)} samples"))
    return cases


def nn_reference(inputs: dict) -> dict:
    """micrograd's MLP in PyTorch float64: relu on hidden layers, linear output, squared error summed."""
    layers = [(torch.tensor([n[:-1] for n in layer], dtype=torch.float64, requires_grad=True),
               torch.tensor([n[-1] for n in layer], dtype=torch.float64, requires_grad=True))
              for layer in inputs["params"]]
    xs = torch.tensor(inputs["xs"], dtype=torch.float64)
    ys = torch.tensor(inputs["ys"], dtype=torch.float64)

    def forward(params):
        h = xs
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            if i != len(params) - 1:
                h = h.relu()
        return h

    def flat_grads(params):  # per neuron: its weights then its bias, as the template's structure orders them
        return torch.cat([torch.cat([w.grad, b.grad[:, None]], 1).flatten() for w, b in params])

    out = forward(layers)
    loss = ((out - ys) ** 2).sum()
    loss.backward()
    grads = flat_grads(layers)
    with torch.no_grad():
        stepped = [((w - inputs["lr"] * w.grad).requires_grad_(), (b - inputs["lr"] * b.grad).requires_grad_())
                   for w, b in layers]
    with torch.no_grad():
        loss_after = ((forward(stepped) - ys) ** 2).sum()
    return {"forward": out.detach(), "grads": grads, "loss_before": loss.item(), "loss_after": loss_after.item(),
            "count": sum(w.numel() + b.numel() for w, b in layers)}


def nn_truth(case: Case) -> dict:
    t = nn_reference(case.inputs)
    return {"parameters": torch.tensor(float(t["count"]), dtype=torch.float64),
            "forward": t["forward"], "gradients": t["grads"],
            "SGD step": torch.tensor([t["loss_before"], t["loss_after"]], dtype=torch.float64),
            "zero_grad": t["grads"]}


# -- the exercises ------------------------------------------------------------------------------------------

_ENGINE = dict(module=ENGINE, blocked_imports=("torch",), blocked_why=NO_TORCH, time_limit=10.0, judge=judge,
               mistakes=ENGINE_MISTAKES)
_DRIVERS = "autograder.assignments.micrograd.student_side"

EXERCISES = [
    Exercise(id="micrograd.ops", entry="Value", points=8, title="every operation's forward and backward, alone",
             cases=ops_cases, driver=f"{_DRIVERS}:ops_driver", truth=ops_truth,
             **{**_ENGINE, "mistakes": OP_MISTAKES}),
    Exercise(id="micrograd.backward", entry="Value.backward", points=3,
             title="backward(): the seed gradient and reverse topological order",
             cases=graph_cases("micrograd.backward", ("seed", "chain")), driver=f"{_DRIVERS}:graphs_driver",
             truth=graph_truth, **_ENGINE),
    Exercise(id="micrograd.reuse", entry="Value", points=3, title="a value used twice, a re-used non-leaf node",
             cases=graph_cases("micrograd.reuse", ("a + a", "a * a", "b + b (b = a + a)", "diamond")),
             driver=f"{_DRIVERS}:graphs_driver", truth=graph_truth, **_ENGINE),
    Exercise(id="micrograd.expressions", entry="Value", points=6,
             title="random expression graphs with fan-out, against PyTorch float64",
             cases=expression_cases, driver=f"{_DRIVERS}:expression_driver", truth=expression_truth,
             **{**_ENGINE, "judge": judge_expression}),
    Exercise(id="micrograd.deep_chain", entry="Value.backward", points=1,
             title="a 100,000-node chain (a recursive topological sort hits the recursion limit)",
             cases=deep_chain_cases, driver=f"{_DRIVERS}:deep_chain_driver", truth=deep_chain_truth,
             **{**_ENGINE, "time_limit": 30.0}),
    Exercise(id="micrograd.nn", entry="MLP", points=4,
             title="nn: parameters, forward, gradients, one SGD step, zero_grad",
             cases=nn_cases, driver=f"{_DRIVERS}:nn_driver", truth=nn_truth,
             files=("micrograd/engine.py", "micrograd/nn.py"),
             **{**_ENGINE, "module": NN, "judge": judge_nn}),
]
