"""micrograd, the student's side: drivers that build graphs from the student's `Value`s, call backward()
and return plain floats and lists. Runs in the student's process with torch blocked: it imports nothing
of the grader and no torch. Every sub-part is guarded (`_attempt`), so a stub, an exception, a
`sys.exit()` or an endless loop in one backward costs that check only."""
from __future__ import annotations

import gc
import itertools
import os
import signal
import traceback

from autograder.runtime.verdicts import NOT_IMPLEMENTED_VALUE, NotImplementedMarker

ENGINE, NN = "micrograd.engine", "micrograd.nn"


# name -> (operand kinds, the operation). The lambdas only use Python operators and the methods that
# micrograd's Value and torch.Tensor share, so one table serves the student's engine and the truth.
OPS = {
    "add": ("nn", lambda a, b: a + b),
    "mul": ("nn", lambda a, b: a * b),
    "pow": ("nc", lambda a, k: a**k),
    "exp": ("n", lambda a: a.exp()),
    "log": ("n", lambda a: a.log()),
    "tanh": ("n", lambda a: a.tanh()),
    "relu": ("n", lambda a: a.relu()),
    "sigmoid": ("n", lambda a: a.sigmoid()),
    "neg": ("n", lambda a: -a),
    "sub": ("nn", lambda a, b: a - b),
    "div": ("nn", lambda a, b: a / b),
    "addc": ("nc", lambda a, c: a + c),
    "radd": ("cn", lambda c, a: c + a),
    "rsub": ("cn", lambda c, a: c - a),
    "rmul": ("cn", lambda c, a: c * a),
    "rdiv": ("cn", lambda c, a: c / a),
}


# How the student sees each operation (the check names of micrograd.ops).
SHOWN = {"add": "a + b", "mul": "a * b", "pow": "a ** k", "exp": "a.exp()", "log": "a.log()",
         "tanh": "a.tanh()", "relu": "a.relu()", "sigmoid": "a.sigmoid()", "neg": "-a", "sub": "a - b",
         "div": "a / b", "addc": "a + c", "radd": "c + a", "rsub": "c - a", "rmul": "c * a", "rdiv": "c / a"}


def run_program(program: dict, leaf) -> list:
    """Every node of the program's graph, leaves first; `leaf(float)` makes a leaf (a Value or a tensor)."""
    nodes = [leaf(v) for v in program["leaves"]]
    for name, *args in program["ops"]:
        kinds, op = OPS[name]
        nodes.append(op(*(nodes[a] if kind == "n" else a for kind, a in zip(kinds, args))))
    return nodes


class _OutOfTime(BaseException):
    """Raised by the per-part alarm; BaseException so that a student's `except Exception` cannot eat it."""


class _NotANumber(Exception):
    pass


PART_SECONDS = 1.0  # one operation's forward and backward takes microseconds; 1 s means an endless loop


def _describe(exc: BaseException, root: str) -> dict:
    """{"message": "TypeError: ... (micrograd/engine.py, line 41, in _backward)", "short": the same without
    the exception's own text, which could print a hidden case's inputs}."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root + os.sep)]
    where = f" ({os.path.relpath(frames[-1].filename, root)}, line {frames[-1].lineno}, in {frames[-1].name})" \
        if frames else ""
    if isinstance(exc, SystemExit):
        message = f"called sys.exit({exc.code!r}){where}"
        return {"message": message, "short": message}
    if isinstance(exc, RecursionError):
        message = f"RecursionError: maximum recursion depth exceeded{where}"
        return {"message": message, "short": message}
    text = str(exc)
    text = text if len(text) <= 200 else text[:200] + "..."
    return {"message": f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}",
            "short": f"{type(exc).__name__}{where}"}


def _attempt(fn, root: str, seconds: float = PART_SECONDS):
    """fn(), or what went wrong as data: NOT_IMPLEMENTED, or {"failure": error|timeout, "message": ...}."""
    def out_of_time(signum, frame):
        raise _OutOfTime()
    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except NotImplementedError:
        return NOT_IMPLEMENTED_VALUE
    except _OutOfTime:
        return {"failure": "timeout", "message": f"did not finish within {seconds:g} s (an endless loop?)"}
    except _NotANumber as exc:
        return {"failure": "wrong", "message": str(exc)}
    except (Exception, SystemExit) as exc:  # noqa: one part's failure must not end the others
        return {"failure": "error", **_describe(exc, root)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _num(x, what: str) -> float:
    """A number out of the student's engine; a Value where a float belongs is a classic bug, named as such."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if hasattr(x, "data") and hasattr(x, "grad"):
        raise _NotANumber(f"{what} is a Value, not a number: in _backward use other.data and out.grad, "
                          "not the Value objects")
    raise _NotANumber(f"{what} is a {type(x).__name__}, not a number")


def _root(module) -> str:
    """The submission directory (the module is micrograd/engine.py or micrograd/nn.py under it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))


def _value_class(module):
    if module.__name__ == ENGINE:
        return module.Value
    import importlib
    return importlib.import_module(ENGINE).Value


# Where a Value keeps its inputs. micrograd calls it `_prev`, but that is private structure: an engine that
# keeps them in `children` (or `_children`, `parents`...) is as right. Found once per class, from what an
# operation's result holds: the attribute that holds both operands.
_CHILDREN: dict = {}


def children_attr(Value) -> str:
    """The attribute of the student's Value that holds an operation's inputs (`_prev` where none is found)."""
    key = id(Value)
    if key in _CHILDREN:
        return _CHILDREN[key]
    found = "_prev"
    for op in (lambda a, b: a + b, lambda a, b: a * b):
        def made(op=op):
            a, b = Value(2.0), Value(3.0)
            return a, b, op(a, b)
        # guarded like every part: a constructor or operator that raises or never ends costs its own checks
        # (found again there), not this search
        got = _attempt(made, "", seconds=PART_SECONDS)
        if not isinstance(got, tuple):
            continue
        a, b, out = got
        try:
            names = ["_prev"] + sorted(k for k in vars(out) if isinstance(k, str))
        except TypeError:  # no instance attributes (__slots__, a number)
            continue
        hit = None
        for n in names:
            try:
                held = getattr(out, n, None)
                if isinstance(held, (set, frozenset, list, tuple)) and any(x is a for x in held) \
                        and any(x is b for x in held):
                    hit = n
                    break
            except Exception:  # noqa: a property of the student's that raises is not where inputs are kept
                continue
        if hit is not None:
            found = hit
            break
    _CHILDREN[key] = found
    return found


def children(v) -> tuple:
    """The inputs of a Value, through the attribute its class keeps them in."""
    kids = getattr(v, children_attr(type(v)), ())
    return tuple(kids) if isinstance(kids, (set, frozenset, list, tuple)) else ()


def _propagate(out, upstream: float) -> None:
    """Backpropagate with the grader's own topological order, so one op's backward is judged on its own."""
    order, visited, stack = [], set(), [(out, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
        elif id(v) not in visited:
            visited.add(id(v))
            stack.append((v, True))
            stack.extend((c, False) for c in children(v) if id(c) not in visited)
    out.grad = upstream
    for v in reversed(order):
        v._backward()



# -- a fixed visiting order ---------------------------------------------------------------------------------
# A Value hashes by identity, i.e. by its memory address, which differs from run to run: so does the order in
# which a set of Values (`_prev`, `visited`) is walked. Where a submission's result depends on that order (a
# `=` for `+=`), its score would too. A hash that numbers each Value when first hashed is the same identity
# (equality stays `is`), and makes the order the same on every run.

_SERIAL = itertools.count(1)


def _serial_hash(self) -> int:
    d = self.__dict__
    h = d.get("_order_serial")
    if h is None:
        h = d["_order_serial"] = next(_SERIAL)
    return h


def _deterministic_order(Value) -> None:
    """Give the student's Value the serial hash, where that changes nothing but the order: equality is
    identity and instances have a __dict__."""
    global _SERIAL
    children_attr(Value)  # found now, with Values of its own: they must not take serial numbers later
    _SERIAL = itertools.count(1)
    if not isinstance(Value, type) or Value.__eq__ is not object.__eq__ or "__slots__" in vars(Value):
        return
    try:
        Value.__hash__ = _serial_hash
    except (TypeError, AttributeError):
        pass


# -- backward() on its own: nodes whose local derivatives are given -----------------------------------------

def _prev_type(Value):
    prev = getattr(Value(0.0), children_attr(Value), ())
    return type(prev) if isinstance(prev, (set, frozenset, list, tuple)) else tuple


def _node(Value, prev_type, children: list, weights: list):
    """A node of the student's Value class built here: `_prev` in the student's own container type, and a
    `_backward` that adds weight * out.grad into each child (a correct op whose local derivatives are the
    weights). backward() on such a graph tests the visiting order and the seed, and nothing else."""
    out = Value(1.0)
    setattr(out, children_attr(Value), prev_type(children))
    parts = tuple(zip(children, weights))

    def _backward():
        for child, w in parts:
            child.grad += w * out.grad
    out._backward = _backward
    return out


def _alone(Value, program: dict, weights: list) -> list[float]:
    """backward() on the program's graph made of `_node`s (weights per operand, given): every node's grad."""
    prev_type = _prev_type(Value)
    nodes = [Value(1.0) for _ in program["leaves"]]
    for (name, *args), ws in zip(program["ops"], weights):
        kinds = OPS[name][0]
        children = [nodes[a] for kind, a in zip(kinds, args) if kind == "n"]
        nodes.append(_node(Value, prev_type, children, ws))
    nodes[-1].backward()
    return [_num(n.grad, "a grad") for n in nodes]


def _isolated_nodes(Value, root: str, program: dict, specs: list) -> list:
    """Each operation of the program alone (`_one_op`) at the spec given for its node. An operation that
    failed is not run again (an endless loop costs its time once)."""
    failed: dict = {}
    results = []
    for (name, *_), spec in zip(program["ops"], specs):
        if name not in failed:
            got = _attempt(lambda: _one_op(Value, name, spec), root)
            if isinstance(got, (dict, NotImplementedMarker)):
                failed[name] = got
            results.append(got)
        else:
            results.append(failed[name])
    return results


def _reaches(out, target) -> bool:
    seen, stack = set(), [out]
    while stack:
        v = stack.pop()
        if v is target:
            return True
        if id(v) not in seen:
            seen.add(id(v))
            stack.extend(children(v))
    return False


_OWN_BACKWARD = ("add", "mul", "pow", "exp", "log", "tanh", "relu", "sigmoid")  # the template's _backward bodies


def _one_op(Value, name: str, spec: dict) -> list[float]:
    """[out.data, a.grad(, b.grad)] after out.grad = g and a backward pass, with the inputs' grads pre-set
    (an input that is used elsewhere already holds gradient: `+=` keeps it, `=` loses it)."""
    kinds, op = OPS[name]
    inputs = []
    for key in ("a", "b")[: kinds.count("n")]:
        v = Value(spec[key])
        v.grad = spec[key + "_grad"]
        inputs.append(v)
    operands = iter(inputs)
    out = op(*(spec["const"] if kind == "c" else next(operands) for kind in kinds))
    for name_, v in zip("ab", inputs):
        # a derived op's numbers show a broken _prev (backward() stops short); a base op's closure reaches its
        # inputs directly, so there only this check shows it
        if name in _OWN_BACKWARD and not _reaches(out, v):  # backward() walks _prev: an input it cannot reach never gets its gradient
            raise _NotANumber(f"the result's {children_attr(Value)} does not lead back to input {name_}: backward() "
                              "cannot reach it")
    _propagate(out, spec["g"])
    return [_num(out.data, "out.data")] + [_num(v.grad, "the input's grad") for v in inputs]


def ops_driver(module, inputs: dict) -> dict:
    """micrograd.ops: each operation in isolation."""
    Value, root = _value_class(module), _root(module)
    _deterministic_order(Value)
    outputs = {SHOWN[name]: _attempt(lambda: _one_op(Value, name, spec), root) for name, spec in inputs["ops"].items()}
    outputs["_probe"] = _probe(Value, root, inputs["probe_ops"], graphs=False)  # derived ops: local only
    return outputs


def _graphs(Value, v: dict) -> dict:
    """The small graphs that test `backward()` itself and gradient accumulation (values from `v`)."""
    def seed():
        x, y, z = Value(v["x"]), Value(v["y"]), Value(v["z"])
        out = x * y + z
        out.backward()
        return [_num(n.grad, "grad") for n in (out, x, y, z)]

    def chain():  # every node's backward must run after its consumer's: reversed topological order
        x, w, u, c = Value(v["x"]), Value(v["w"]), Value(v["u"]), Value(v["z"])
        out = ((x * w).tanh() * u + c).exp()
        out.backward()
        return [_num(n.grad, "grad") for n in (x, w, u, c)]

    def leaf_twice_add():
        a = Value(v["a"])
        (a + a).backward()
        return [_num(a.grad, "a.grad")]

    def leaf_twice_mul():
        a = Value(v["a"])
        (a * a).backward()
        return [_num(a.grad, "a.grad")]

    def nonleaf_twice():
        a = Value(v["a"])
        b = a + a
        c = b + b
        c.backward()
        return [_num(b.grad, "b.grad"), _num(a.grad, "a.grad")]

    def diamond():  # b is used at distances 1, 2 and 3 from the output
        a, x = Value(v["a"]), Value(v["x"])
        b = a * x
        c = b.tanh()
        d = c * b
        out = d + b
        out.backward()
        return [_num(n.grad, "grad") for n in (d, c, b, a, x)]

    parts = {"seed": seed, "chain": chain, "a + a": leaf_twice_add, "a * a": leaf_twice_mul,
             "b + b (b = a + a)": nonleaf_twice, "diamond": diamond}
    return parts


def _probe(Value, root: str, ops, graphs: bool = True) -> dict:
    """Fixed graphs whose results say which mistake an engine makes (see `engine_mistake`); the local
    derivatives only of the `ops` the exercise uses (an endless loop elsewhere costs no time here)."""
    probe = {"local": {f"{name}{i}": _attempt(lambda: _one_op(Value, name, spec), root)
                       for name, specs in PROBE_LOCAL.items() if name in ops for i, spec in enumerate(specs)}}
    if not graphs:
        return probe
    failed = None
    for name, fn in _graphs(Value, PROBE_VALUES).items():
        # every graph calls backward(): once it hangs, it hangs on the next graph too
        probe[name] = failed or _attempt(fn, root)
        if isinstance(probe[name], dict) and probe[name].get("failure") == "timeout":
            failed = probe[name]
    return probe


def graphs_driver(module, inputs: dict) -> dict:
    """micrograd.backward and micrograd.reuse: the named small graphs (programs), at the case's values."""
    Value, root = _value_class(module), _root(module)
    _deterministic_order(Value)
    outputs = {"_alone": {}, "_nodes": {}}
    for name, graph in inputs["graphs"].items():
        program, report = graph["program"], graph["report"]

        def run(program=program, report=report):
            nodes = run_program(program, Value)
            nodes[-1].backward()
            return [_num(nodes[i].grad, "a grad") for i in report]
        outputs[name] = _attempt(run, root)
        outputs["_alone"][name] = _attempt(lambda: _alone(Value, program, graph["weights"]), root)
        outputs["_nodes"][name] = _isolated_nodes(Value, root, program, graph["node_specs"])
    outputs["_probe"] = _probe(Value, root, inputs["probe_ops"])
    return outputs


def expression_driver(module, inputs: dict) -> dict:
    """micrograd.expressions: build the program from the student's Values, call backward(), read grads;
    and, to judge backward() on its own, the same graph from nodes whose local derivatives are given."""
    Value, root = _value_class(module), _root(module)
    _deterministic_order(Value)
    program = inputs["program"]
    n_leaves = len(program["leaves"])

    def run():
        nodes = run_program(program, Value)
        out = nodes[-1]
        out.backward()
        return {"output": [_num(out.data, "out.data"), _num(out.grad, "out.grad")],
                "leaf grads": [_num(n.grad, "a leaf's grad") for n in nodes[:n_leaves]],
                "node grads": [_num(n.grad, "a node's grad") for n in nodes[n_leaves:-1]]}
    result = _attempt(run, root, seconds=10.0)
    outputs = result if isinstance(result, dict) and "failure" not in result else \
        {"output": result, "leaf grads": result, "node grads": result}
    outputs["_alone"] = {"expression": _attempt(lambda: _alone(Value, program, inputs["weights"]), root, 10.0)}
    outputs["_nodes"] = {"expression": _isolated_nodes(Value, root, program, inputs["node_specs"])}
    outputs["_probe"] = _probe(Value, root, inputs["probe_ops"])
    return outputs


def deep_chain_driver(module, inputs: dict) -> dict:
    """micrograd.deep_chain: v = v * m_i + c_i, 2 nodes per step; then a chain of nodes whose local
    derivatives are given, deeper than the recursion limit (backward() on its own). Not guarded: a RecursionError is the finding, and the
    worker names it (recursion_limit)."""
    Value, root = _value_class(module), _root(module)
    _deterministic_order(Value)
    probe = _probe(Value, root, inputs["probe_ops"])
    # Each node's closure refers to the node (a reference cycle), so the cyclic collector would scan the
    # growing graph again and again: 6x slower here. This process is thrown away after the case anyway.
    gc.disable()
    outputs = {"_probe": probe}

    def own_ops():
        x = Value(inputs["x"])
        v = x
        for m, c in zip(inputs["m"], inputs["c"]):
            v = v * m + c
        v.backward()
        return [_num(v.data, "out.data"), _num(x.grad, "x.grad")]

    def alone():  # a chain deep enough for the recursion limit, of nodes with local derivatives m_i and 1
        x = Value(1.0)
        v = x
        prev_type = _prev_type(Value)
        for m in inputs["m"][: inputs["alone_steps"]]:
            for w in (m, 1.0):
                v = _node(Value, prev_type, [v], [w])
        v.backward()
        return [_num(x.grad, "x.grad")]
    try:
        outputs["out, x.grad"] = own_ops()
    except NotImplementedError:
        outputs["out, x.grad"] = NOT_IMPLEMENTED_VALUE
    except RecursionError as exc:  # raised again by alone() if backward() itself recurses
        outputs["out, x.grad"] = {"failure": "error", **_describe(exc, root)}
    except Exception as exc:  # noqa: an op that fails must not hide what backward() does on its own
        outputs["out, x.grad"] = {"failure": "error", **_describe(exc, root)}
    outputs["_alone"] = {"out, x.grad": _attempt(alone, root, seconds=10.0)}
    return outputs


def nn_driver(module, inputs: dict) -> dict:
    """micrograd.nn: MLP with the case's parameters; each part on its own: parameters(), forward, gradients
    (and the same gradients with the engine's own closures walked in a fixed order), one SGD step with the
    student's gradients, zero_grad on gradients set by the driver."""
    Value, root = _value_class(module), _root(module)
    _deterministic_order(Value)
    xs, ys, lr = inputs["xs"], inputs["ys"], inputs["lr"]
    outputs = {"_probe": _probe(Value, root, inputs["probe_ops"])}
    model = _attempt(lambda: module.MLP(inputs["nin"], list(inputs["nouts"])), root)
    if not hasattr(model, "layers"):
        failure = model if isinstance(model, (dict, NotImplementedMarker)) else \
            {"failure": "error", "message": "MLP(nin, nouts) has no .layers: keep the template's structure"}
        return {**{k: failure for k in NN_CHECKS}, **outputs}

    def structured():  # the parameters in the template's structure, whatever parameters() returns
        return [p for layer in model.layers for n in layer.neurons for p in list(n.w) + [n.b]]

    def set_parameters():
        flat = [w for layer in inputs["params"] for neuron in layer for w in neuron]
        params = structured()
        if len(params) != len(flat):
            raise _NotANumber(f"the MLP has {len(params)} weights and biases, expected {len(flat)}: keep the "
                              "template's constructors")
        for p, value in zip(params, flat):
            p.data, p.grad = value, 0.0
    failed = _attempt(set_parameters, root)
    if failed is not None:
        return {**{k: failed for k in NN_CHECKS}, **outputs}

    def forward():
        rows = []
        for x in xs:
            out = model([Value(xi) for xi in x])
            out = out if isinstance(out, (list, tuple)) else [out]
            rows.append([_num(o.data, "an output's data") for o in out])
        return rows

    def loss():
        total = Value(0.0)
        for x, y in zip(xs, ys):
            out = model([Value(xi) for xi in x])
            out = out if isinstance(out, (list, tuple)) else [out]
            for o, t in zip(out, y):
                total = total + (o - t) ** 2
        return total

    def gradients():
        loss().backward()
        return [_num(p.grad, "a parameter's grad") for p in structured()]

    def propagated():  # the engine's own closures, walked in the grader's order: backward() left out
        set_parameters()
        _propagate(loss(), 1.0)
        return [_num(p.grad, "a parameter's grad") for p in structured()]

    def connected():  # which parameters the loss's graph reaches through _prev (`w.data * x` cuts w off)
        reached, stack = set(), [loss()]
        while stack:
            v = stack.pop()
            if id(v) not in reached:
                reached.add(id(v))
                stack.extend(children(v))
        return [id(p) in reached for p in structured()]

    def cover():  # where each parameter parameters() returns is in the structure (-1: not a parameter)
        index = {id(p): i for i, p in enumerate(structured())}
        return [index.get(id(p), -1) for p in model.parameters()]

    def sgd_step(grads):
        set_parameters()
        for p, g in zip(structured(), grads):
            p.grad = g  # the student's own gradients, whatever they are
        before = loss()
        for p in model.parameters():
            p.data -= lr * p.grad
        after = loss()
        return [_num(before.data, "the loss"), _num(after.data, "the loss")]

    def zero_grad():  # on gradients set here: judged on its own, not on backward()
        set_parameters()
        for k, p in enumerate(structured()):
            p.grad = 1.0 + k
        model.zero_grad()
        return [_num(p.grad, "a parameter's grad after zero_grad()") for p in structured()]

    outputs["parameters"] = _attempt(lambda: len(model.parameters()), root)
    outputs["_cover"] = _attempt(cover, root)
    outputs["forward"] = _attempt(forward, root)
    outputs["gradients"] = _attempt(gradients, root)
    outputs["_propagated"] = _attempt(propagated, root)
    outputs["_connected"] = _attempt(connected, root)
    grads = outputs["gradients"]
    outputs["SGD step"] = _attempt(lambda: sgd_step(grads), root) \
        if not isinstance(grads, (dict, NotImplementedMarker)) else grads
    outputs["zero_grad"] = _attempt(zero_grad, root)
    return outputs


NN_CHECKS = ("parameters", "forward", "gradients", "SGD step", "zero_grad")


# Two evaluations per op where a branch matters (relu on both sides); pre-set input grads and an upstream
# gradient != 1 make `=` for `+=` and a forgotten `* out.grad` visible.
PROBE_LOCAL = {
    name: [dict(a=a, b=-1.3, const=3, a_grad=0.25, b_grad=-0.5, g=1.5) for a in points]
    for name, points in {"add": (0.6,), "mul": (0.6,), "pow": (0.6, -0.8), "exp": (0.6,), "log": (0.6,),
                         "tanh": (0.6, -1.7), "relu": (0.6, -0.6), "sigmoid": (0.6, -1.7)}.items()
}


PROBE_VALUES = {"x": 0.9, "y": -1.3, "z": 0.4, "w": -0.7, "u": 1.6, "a": 0.7}

