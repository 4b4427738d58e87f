"""micrograd: the catalogue of known mistakes, and how the probe (small fixed graphs that isolate each way a
scalar engine goes wrong: one op's local derivative, `=` for `+=`, the seed, the visiting order) names them."""
from __future__ import annotations

from autograder.core.diagnose import close
from autograder.core.exercise import Mistake
from autograder.assignments.micrograd.cases import BASE_OPS, BUILT_FROM, NN_VARIANTS, nn_reference, probe_truth
from autograder.assignments.micrograd.student_side import PROBE_LOCAL, SHOWN

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
    # The lecture's own bug is often on one input only (`self.grad = other.data * out.grad`, then `+=`).
    overwritten = [i for i, (got_i, l, p) in enumerate(zip(grads, local, pre))
                   if close(got_i, l * spec["g"]) and not close(got_i, p + l * spec["g"])]
    if overwritten and all(i in overwritten or close(got_i, p + l * spec["g"])
                           for i, (got_i, l, p) in enumerate(zip(grads, local, pre))):
        which = " and ".join(("self", "other")[i] for i in overwritten)
        return "overwrite_not_accumulate", f"the _backward of {shown} replaces the gradient {which} already " \
                                           f"holds (`{which}.grad = ...` where `+=` is needed)"
    a, g, pa = spec["a"], spec["g"], pre[0]
    from_input = {"tanh": 1 - a**2, "exp": a, "sigmoid": a * (1 - a)}.get(name)
    if from_input is not None and close(grads[0], pa + from_input * g):
        return "uses_input_not_output", f"{shown}: {DERIVATIVE[name]}, not of a.data"
    if close(grads, [p + l for p, l in zip(pre, local)]):
        return "wrong_local_derivative", f"{shown}: the chain rule multiplies the local derivative by out.grad"
    return "wrong_local_derivative", f"{shown}: {DERIVATIVE[name]}"


# The base operations each small graph is built from, and how a student can picture the graph.
GRAPH_OPS = {"seed": ("add", "mul"), "chain": ("add", "mul", "tanh", "exp"), "a + a": ("add",), "a * a": ("mul",),
             "b + b (b = a + a)": ("add",), "diamond": ("add", "mul", "tanh"), "a*x + a*y": ("add", "mul"),
             "x*a + y*a": ("add", "mul")}
GRAPH_SHOWN = {"chain": "exp(tanh(x*w)*u + z)", "diamond": "b = a*x; out = tanh(b)*b + b",
               "b + b (b = a + a)": "b = a + a; c = b + b"}


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



# -- which operations are wrong on their own --------------------------------------------------------------

def op_failure(got, expected) -> str | None:
    """How one op measured alone (`_one_op`: [out, a.grad(, b.grad)]) is wrong, or None where it is right."""
    if isinstance(got, dict) and "failure" in got:
        message = str(got.get("message", ""))
        if message.startswith("AttributeError"):
            return "is missing"
        if "does not lead back to input" in message:
            return "does not record its inputs in _prev"
        return "does not finish" if got.get("failure") == "timeout" else \
            "raises" if got.get("failure") == "error" else "is wrong"
    if not _usable(got):
        return "is not implemented"
    if not isinstance(got, list) or len(got) != len(expected) or not close(got, expected):
        return "is wrong"
    return None


def overwriting_ops(probe, ops) -> list[str]:
    """The base `ops` whose probe shows `=` where `+=` belongs (shown names)."""
    local = probe.get("local") if isinstance(probe, dict) and isinstance(probe.get("local"), dict) else {}
    truth = probe_truth()["local"]
    out = []
    for name, specs in PROBE_LOCAL.items():
        if name in ops and any((local_mistake(name, spec, local.get(f"{name}{i}"), truth[f"{name}{i}"]) or ("",))[0]
                               == "overwrite_not_accumulate" for i, spec in enumerate(specs)):
            out.append(SHOWN[name])
    return out


def probe_bad_ops(probe, ops, forward_only: bool = False) -> dict[str, str]:
    """{shown op: how it is wrong} for the base `ops` among the probe's single-op measurements
    (`forward_only`: only a wrong or failing forward value counts)."""
    local = probe.get("local") if isinstance(probe, dict) and isinstance(probe.get("local"), dict) else {}
    truth = probe_truth()["local"]
    bad: dict[str, str] = {}
    for name, specs in PROBE_LOCAL.items():
        if name not in ops:
            continue
        for i in range(len(specs)):
            key = f"{name}{i}"
            if key not in local:
                continue
            got = local[key]
            if forward_only and isinstance(got, list) and got:
                got, expected = got[:1], truth[key][:1]
            else:
                expected = truth[key]
            how = op_failure(got, expected)
            if forward_only and how not in ("is wrong", "is missing"):  # a failing backward says nothing of forward
                how = None
            if how and SHOWN[name] not in bad:
                bad[SHOWN[name]] = how
    return bad


def depends_on(bad: dict[str, str]) -> str:
    """"`a.tanh()`, which is missing" / "`a + b` and `a * b`, which are wrong"."""
    by_how: dict[str, list[str]] = {}
    for shown, how in bad.items():
        by_how.setdefault(how, []).append(f"`{shown}`")
    parts = []
    for how, names in by_how.items():
        verb = how if len(names) == 1 else how.replace("is ", "are ", 1).replace("does ", "do ", 1) \
            .replace("raises", "raise").replace("its inputs", "their inputs")
        parts.append(f"{' and '.join(names)}, which {verb}")
    return "; ".join(parts)


# -- nn: what the parameters() list and the graph show ---------------------------------------------------------------------------------------------------------

def _structure(inputs: dict) -> tuple[int, list[int]]:
    """(number of parameters, the indices of the biases) in the template's order."""
    k, biases = 0, []
    for layer in inputs["params"]:
        for neuron in layer:
            k += len(neuron)
            biases.append(k - 1)
    return k, biases


def nn_variant(inputs: dict, forward) -> str:
    """Which MLP the student's forward pass computes: the template's, or the video's tanh neuron."""
    for variant in NN_VARIANTS:
        if _usable(forward) and close(forward, nn_reference(inputs, variant)["forward"]):
            return variant
    return "relu"


def parameters_problem(inputs: dict, cover) -> str | None:
    """What is wrong with the parameters() list (as structure indices; -1: not one of the model's)."""
    if not isinstance(cover, list):
        return None
    n, biases = _structure(inputs)
    if sorted(cover) == list(range(n)):
        return None
    seen = set(cover)
    if -1 in seen:
        return "it returns Values that are not the model's parameters (copies, or new Values)"
    if len(seen) < len(cover):
        return "it returns some parameters more than once"
    missing = set(range(n)) - seen
    if missing == set(biases):
        return "the biases (b) are missing"
    if missing and missing <= set(biases):
        return f"{len(missing)} of the {len(biases)} biases are missing"
    if missing and not (missing & set(biases)):
        return "some weights (w) are missing"
    return f"{len(missing)} of the {n} parameters are missing"


def _detached(context) -> str | bool:
    connected = (context or {}).get("outputs", {}).get("_connected")
    if not isinstance(connected, list) or all(c is True for c in connected):
        return False
    return f"{sum(c is not True for c in connected)} of {len(connected)} parameters are not in the loss's graph"


# The nn exercise's catalogue: parameters() first; the engine's mistakes only where the engine shows (the
# gradients and the step). The lecture's tanh Neuron is no mistake (judge_nn judges it as the MLP it is).
NN_MISTAKES = (
    Mistake("parameters_incomplete", "parameters() must return every weight and bias of the model exactly once "
            "(Neuron: self.w + [self.b]; Layer and MLP: their parts' parameters, flattened)",
            lambda got, exp, case=None, context=None, **_: parameters_problem(
                case.inputs, (context or {}).get("outputs", {}).get("_cover")) or False,
            ("parameters", "SGD step", "zero_grad")),
    Mistake("detached_parameter", "the loss's graph does not reach every parameter: `wi.data * xi` (or a new "
            "Value made from a number) cuts the weight off the graph, so backward() never gives it a gradient; "
            "compute with the Value itself (`wi * xi`)",
            lambda got, exp, context=None, **_: _detached(context), ("gradients",)),
    Mistake("zero_grad_incomplete", "zero_grad() must set the gradient of every parameter to 0 (before each "
            "backward pass, or the gradients of the passes add up)",
            lambda got, exp, **_: _usable(got) and not close(got, exp), ("zero_grad",)),
) + tuple(Mistake(m.id, m.hint, m.matches, ("gradients", "SGD step")) for m in ENGINE_MISTAKES)
