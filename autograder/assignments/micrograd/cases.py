"""micrograd: the cases (expressions as data) and their truths, PyTorch float64 autograd in the grader.

A program is a list of leaf values and a list of instructions `[op, operand, ...]` where an operand is a
node index (`n`) or a constant (`c`). The same interpreter (`run_program`) builds the graph from the
student's `Value`s in the student's process and from float64 tensors here, so the truth is PyTorch
autograd on exactly the student's expression.
"""
from __future__ import annotations

import functools
import math
import random

import torch

from autograder.core.exercise import Case, Seeds
from autograder.core.truth import backward
from autograder.assignments.micrograd.student_side import OPS, PROBE_LOCAL, PROBE_VALUES, SHOWN, run_program

# -- expressions as data ----------------------------------------------------------------------------------

# Order probes need the ops that build them; every engine probe includes these.
ORDER_OPS = ("add", "mul", "tanh", "exp")
BASE_OPS = ("add", "mul", "pow", "exp", "log", "tanh", "relu", "sigmoid")
# Derived operations have no backward of their own: they are built from these base operations.
BUILT_FROM = {"neg": ("mul",), "sub": ("add", "mul"), "div": ("mul", "pow"), "addc": ("add",), "radd": ("add",),
              "rsub": ("add", "mul"), "rmul": ("mul",), "rdiv": ("mul", "pow")}


def torch_program(program: dict) -> tuple[list, dict]:
    """PyTorch float64 autograd on a program: (nodes, {value, leaf grads, node grads})."""
    nodes = run_program(program, lambda v: torch.tensor(float(v), dtype=torch.float64, requires_grad=True))
    for node in nodes[len(program["leaves"]):]:
        node.retain_grad()
    out = nodes[-1]
    out.backward()
    grads = [0.0 if n.grad is None else float(n.grad) for n in nodes]
    return nodes, {"value": out.item(), "grads": grads}



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


def ops_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, exercise_id, 3, 4):
        rng = random.Random(seed)
        specs = {name: op_spec(rng, name, seed) for name in OPS}
        case = _case(cases, hidden, {"ops": specs}, ("add", "mul", "pow"),
                     label="each operation at random inputs, pre-set input grads, out.grad != 1")
        # the derived ops' parts, and relu (its zero side cannot tell a right backward from none); no graphs
        case.inputs["probe_ops"] = ["add", "mul", "pow", "relu"]
        cases.append(case)
    return cases


def ops_truth(case: Case) -> dict:
    return {SHOWN[name]: torch.tensor(torch_op(name, spec), dtype=torch.float64)
            for name, spec in case.inputs["ops"].items()}


def graph_values(rng: random.Random) -> dict:
    return {k: round(_away_from_zero(rng, -1.5, 1.5), 4) for k in PROBE_VALUES}


# The small graphs of micrograd.backward / micrograd.reuse as programs: (leaves, ops, the nodes whose grads
# the check shows). The probe's graphs (student_side._graphs) are the same graphs.
SMALL_GRAPHS = {
    "seed": (("x", "y", "z"), [["mul", 0, 1], ["add", 3, 2]], [4, 0, 1, 2]),
    "chain": (("x", "w", "u", "z"), [["mul", 0, 1], ["tanh", 4], ["mul", 5, 2], ["add", 6, 3], ["exp", 7]],
              [0, 1, 2, 3]),
    "a + a": (("a",), [["add", 0, 0]], [0]),
    "a * a": (("a",), [["mul", 0, 0]], [0]),
    "b + b (b = a + a)": (("a",), [["add", 0, 0], ["add", 1, 1]], [1, 0]),
    "diamond": (("a", "x"), [["mul", 0, 1], ["tanh", 2], ["mul", 3, 2], ["add", 4, 2]], [4, 3, 2, 0, 1]),
    # a value that is the same operand of two products: `self.grad = other.data * out.grad` (the lecture's own
    # bug, on one side only) keeps one of the two contributions
    "a*x + a*y": (("a", "x", "y"), [["mul", 0, 1], ["mul", 0, 2], ["add", 3, 4]], [0, 1, 2]),
    "x*a + y*a": (("a", "x", "y"), [["mul", 1, 0], ["mul", 2, 0], ["add", 3, 4]], [0, 1, 2]),
}


def base_ops_of(program: dict) -> tuple[str, ...]:
    """The base operations a program's graph is built from (a derived op counts as what it is built from)."""
    return tuple(sorted({op for name, *_ in program["ops"] for op in (BUILT_FROM.get(name) or (name,))}))


def alone_weights(rng: random.Random, program: dict) -> list[list[float]]:
    """Local derivatives for backward() on its own (`student_side._alone`): any non-zero numbers do, so a
    backward() that skips the seed, a node or a branch cannot match by chance."""
    return [[round(rng.choice((-1, 1)) * rng.uniform(0.5, 1.5), 4) for kind in OPS[name][0] if kind == "n"]
            for name, *_ in program["ops"]]


def node_specs(rng: random.Random, program: dict) -> list[dict]:
    """For every op node, `_one_op`'s inputs at the node's true operand values: the op measured alone."""
    with torch.no_grad():
        values = [t.item() for t in run_program(program, lambda v: torch.tensor(float(v), dtype=torch.float64))]
    specs = []
    for name, *args in program["ops"]:
        kinds = OPS[name][0]
        nodes = [values[a] for kind, a in zip(kinds, args) if kind == "n"]
        const = next((a for kind, a in zip(kinds, args) if kind == "c"), 1.0)
        specs.append(dict(a=nodes[0], b=nodes[1] if len(nodes) > 1 else 0.0, const=const,
                          a_grad=round(rng.uniform(-1, 1), 4), b_grad=round(rng.uniform(-1, 1), 4),
                          g=round(rng.choice((-1, 1)) * rng.uniform(0.5, 2), 4)))
    return specs


def alone_truth(program: dict, weights: list) -> list[float]:
    """What a correct backward() gives on the graph of given local derivatives: reverse-mode accumulation."""
    n_leaves = len(program["leaves"])
    grads = [0.0] * (n_leaves + len(program["ops"]))
    grads[-1] = 1.0
    for j in range(len(program["ops"]) - 1, -1, -1):
        name, *args = program["ops"][j]
        children = [a for kind, a in zip(OPS[name][0], args) if kind == "n"]
        for child, w in zip(children, weights[j]):
            grads[child] += w * grads[n_leaves + j]
    return grads


def graph_cases(parts: tuple[str, ...]):
    def cases(seeds: Seeds, exercise_id: str) -> list[Case]:
        out = []
        for seed, hidden in _seeds(seeds, exercise_id, 2, 3):
            rng = random.Random(seed)
            values = PROBE_VALUES if seed == 0 else graph_values(rng)
            graphs = {}
            for part in parts:
                names, ops, report = SMALL_GRAPHS[part]
                program = {"leaves": [values[n] for n in names], "ops": ops}
                graphs[part] = {"program": program, "report": report, "weights": alone_weights(rng, program),
                                "node_specs": node_specs(rng, program)}
            used = sorted({op for g in graphs.values() for op in base_ops_of(g["program"])})
            out.append(_case(out, hidden, {"graphs": graphs}, used, label="small graphs, random leaf values"))
        return out
    return cases


def graph_truth(case: Case) -> dict:
    truth = {}
    for part, graph in case.inputs["graphs"].items():
        _, t = torch_program(graph["program"])
        truth[part] = torch.tensor([t["grads"][i] for i in graph["report"]], dtype=torch.float64)
    return truth


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


def expression_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    cases = []
    public_sizes = [(3, 12), (4, 20), (5, 30)]
    for seed, hidden in _seeds(seeds, exercise_id, 3, 5):
        rng = random.Random(seed)
        n_leaves, n_ops = (rng.randint(3, 6), rng.randint(15, 40)) if hidden else public_sizes[seed % 3]
        program = random_program(rng, n_leaves, n_ops)
        inputs = {"program": program, "weights": alone_weights(rng, program), "node_specs": node_specs(rng, program)}
        cases.append(_case(cases, hidden, inputs, base_ops_of(program),
                           label=f"{n_leaves} leaves, {len(program['ops'])} operations"))
    return cases


def expression_truth(case: Case) -> dict:
    program = case.inputs["program"]
    _, t = torch_program(program)
    n = len(program["leaves"])
    f64 = functools.partial(torch.tensor, dtype=torch.float64)
    return {"output": f64([t["value"], 1.0]), "leaf grads": f64(t["grads"][:n]), "node grads": f64(t["grads"][n:-1])}


# Two nodes per step: 4,000 operation nodes between x and the output, four times the recursion limit the
# student's process runs with (Python's default, 1,000). A recursive topological sort (or a recursive
# backward) fails there as it would at any depth past the limit, and one that raises the limit passes at
# any depth it raised it to: a longer chain tests nothing more, and costs in proportion (every node is the
# student's Python object; the chain was the largest part of micrograd's grading at 10,000 nodes).
CHAIN_STEPS = 2_000
# backward() on its own (nodes with given local derivatives): the same depth, only needed where an op is wrong
ALONE_CHAIN_STEPS = 2_000


def deep_chain_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, exercise_id, 1, 1):
        g = torch.Generator().manual_seed(seed)
        # multipliers near 1 keep the product of 2,000 of them (the gradient) of order 1
        m = (1 + 2e-3 * (torch.rand(CHAIN_STEPS, generator=g, dtype=torch.float64) - 0.5)).tolist()
        c = (1e-3 * torch.randn(CHAIN_STEPS, generator=g, dtype=torch.float64)).tolist()
        x = float(torch.rand((), generator=g, dtype=torch.float64)) + 0.5
        cases.append(_case(cases, hidden, {"x": x, "m": m, "c": c, "alone_steps": ALONE_CHAIN_STEPS}, ("add", "mul"),
                           label=f"a chain of {2 * CHAIN_STEPS:,} nodes"))
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


def nn_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    cases = []
    for seed, hidden in _seeds(seeds, exercise_id, 2, 2):
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


# The nonlinearity of the hidden layers and of the output layer: the template's (micrograd's nn.py: relu,
# a linear output), and the micrograd video's tanh neuron, on every layer or on the hidden ones only.
NN_VARIANTS = {"relu": ("relu", None), "tanh": ("tanh", "tanh"), "tanh hidden": ("tanh", None)}


def nn_reference(inputs: dict, variant: str = "relu", grads=None, cover=None) -> dict:
    """micrograd's MLP in PyTorch float64, squared error summed. The SGD step updates the parameters at the
    structure's indices `cover` (default all; a repeated index is updated twice) by `grads` (default the
    true gradients): what one step gives with a student's own parameters() and gradients."""
    hidden_act, out_act = NN_VARIANTS[variant]
    sizes = [len(layer[0]) - 1 for layer in inputs["params"]]
    flat0 = torch.tensor([v for layer in inputs["params"] for neuron in layer for v in neuron], dtype=torch.float64)
    xs = torch.tensor(inputs["xs"], dtype=torch.float64)
    ys = torch.tensor(inputs["ys"], dtype=torch.float64)

    def layers(flat):
        out, k = [], 0
        for layer, nin in zip(inputs["params"], sizes):
            block = flat[k:k + len(layer) * (nin + 1)].reshape(len(layer), nin + 1)
            out.append((block[:, :-1], block[:, -1]))
            k += len(layer) * (nin + 1)
        return out

    def forward(flat):
        h = xs
        params = layers(flat)
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            act = hidden_act if i != len(params) - 1 else out_act
            if act is not None:
                h = getattr(h, act)()
        return h

    flat = flat0.clone().requires_grad_()
    out = forward(flat)
    loss = ((out - ys) ** 2).sum()
    loss.backward()
    true_grads = flat.grad.detach()
    g = true_grads if grads is None else torch.tensor(grads, dtype=torch.float64)
    stepped = flat0.clone()
    for k in (range(len(flat0)) if cover is None else cover):
        stepped[k] -= inputs["lr"] * g[k]
    with torch.no_grad():
        loss_after = ((forward(stepped) - ys) ** 2).sum()
    return {"forward": out.detach(), "grads": true_grads, "loss_before": loss.item(), "loss_after": loss_after.item(),
            "count": len(flat0)}


def nn_truth(case: Case) -> dict:
    t = nn_reference(case.inputs)
    return {"parameters": torch.tensor(float(t["count"]), dtype=torch.float64),
            "forward": t["forward"], "gradients": t["grads"],
            "SGD step": torch.tensor([t["loss_before"], t["loss_after"]], dtype=torch.float64),
            "zero_grad": torch.zeros(t["count"], dtype=torch.float64)}
