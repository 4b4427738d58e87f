"""micrograd assignment: the scalar autograd engine (`micrograd/engine.py`) and its `nn` (`micrograd/nn.py`).

Layout: `student_side.py` holds the drivers (run in the student's process, torch blocked: no truth,
tolerance or hint); `cases.py` the cases and their PyTorch truths; `mistakes.py` the catalogue of known
mistakes; this module the judges and `EXERCISES`.

Each function is graded on its own. A check is judged globally (against PyTorch) and, where it fails,
locally: is the function this check is about right, given what it depends on?
- an operation alone (`micrograd.ops`): its forward value and backward at pre-set input grads, walked with
  the grader's own order; a derived op (`a - b`) whose forward value is right and whose error comes from a
  base op it is built from is "correct; depends on `a + b`, which is wrong";
- backward() (`backward`, `reuse`, `expressions`, `deep_chain`): the driver also runs the student's
  backward() on the same graph made of nodes whose local derivatives are given (`student_side._alone`)
  and measures each op node alone (`_one_op`). backward() right there, and an op of this graph wrong
  alone: "backward() is correct; depends on `a.tanh()`, which is missing";
- nn: parameters() (each parameter once), forward, gradients (given the student's forward and engine),
  one SGD step (with the student's own gradients and parameters()), zero_grad (on gradients the driver set).
Local credit is given only where the local check is informative: the given local derivatives are
non-zero, the seed is needed, zero_grad's gradients are non-zero, an SGD step must change the loss.

Runs are deterministic: the driver gives the student's Value a hash that numbers instances in creation
order (`student_side._deterministic_order`), so sets of Values are walked in the same order every run.
"""
from __future__ import annotations

COURSE_POSITION = 1  # where the course takes it up: the order front ends list the assignments in

import functools

import torch

from autograder.core.compare import APPROX, ERROR, TIMEOUT, WRONG, Comparison, compare
from autograder.core.diagnose import close
from autograder.core.exercise import Case, Exercise, Mistake
from autograder.assignments.micrograd.cases import (BASE_OPS, BUILT_FROM, CHAIN_STEPS, LECTURE_XS, LECTURE_YS, NN_VARIANTS, SMALL_GRAPHS, alone_truth, deep_chain_cases,  # noqa: F401
                    deep_chain_truth, expression_cases, expression_truth, graph_cases, graph_truth, nn_cases,
                    nn_reference, nn_truth, ops_cases, ops_truth, probe_truth, random_program, torch_graphs, torch_op,
                    torch_program)
from autograder.assignments.micrograd.mistakes import GRAPH_OPS as GRAPH_OPS_REUSE, overwriting_ops
from autograder.assignments.micrograd.mistakes import (DERIVATIVE, HINTS, MISTAKE_IDS, OP_MISTAKES, ENGINE_MISTAKES, depends_on, engine_mistake,  # noqa: F401
                       local_mistake, op_failure, probe_bad_ops, _catalogue, _engine_matcher, _usable)
from autograder.assignments.micrograd.student_side import ENGINE, NN, NN_CHECKS, OPS, PROBE_LOCAL, PROBE_VALUES, SHOWN, run_program  # noqa: F401

NO_TORCH = "the scalar engine is built from Python floats and `math`; PyTorch is only the grader's reference"

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


def guarded(local_judge):
    """The local analysis reads parts the student's process sent (`_alone`, `_nodes`, `_cover`...): where they
    are malformed (a broken or hostile process), the checks keep their global verdicts instead of the judge
    raising."""
    @functools.wraps(local_judge)
    def judge_case(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
        try:
            return local_judge(case, outputs, truth)
        except Exception:  # noqa: anything malformed costs the local verdicts only
            return judge(case, outputs if isinstance(outputs, dict) else {}, truth)
    return judge_case


@functools.lru_cache(maxsize=4096)
def _op_truth(name: str, spec: tuple) -> tuple:
    return tuple(torch_op(name, dict(spec)))


def wrong_nodes(program: dict, specs: list, got, probe=None) -> dict[str, str]:
    """{shown op: how it is wrong} over the program's op nodes, each measured alone in the driver. A derived
    op (`a - b`) is named by the base ops it is built from where the probe shows one of them wrong."""
    bad: dict[str, str] = {}
    if not isinstance(got, list) or len(got) != len(program["ops"]):
        return bad
    for (name, *_), spec, result in zip(program["ops"], specs, got):
        how = op_failure(result, list(_op_truth(name, tuple(sorted(spec.items())))))
        if not how:
            continue
        base = probe_bad_ops(probe, BUILT_FROM[name]) if name in BUILT_FROM else {}
        for shown, base_how in (base or {SHOWN[name]: how}).items():
            bad.setdefault(shown, base_how)
    return dict(sorted(bad.items(), key=lambda kv: list(SHOWN.values()).index(kv[0])))


def _local(c: Comparison, alone: Comparison | None, bad: dict[str, str], what: str = "backward()") -> None:
    """The check's own verdict where its global one failed: `what` right on its own (`alone`, an informative
    check), and the difference explained by the operations it depends on."""
    if c.passed or c.verdict == "not_implemented" or alone is None:
        return
    if alone.passed and bad:
        c.local_verdict = APPROX
        c.message = f"{what} is correct; depends on {depends_on(bad)}" + (f" ({c.message})" if c.message else "")
    elif alone.passed:
        c.local_verdict = WRONG
        c.message = (f"{what} is right on a graph of given local derivatives and every operation is right alone, "
                     "yet the graph your operations build gets wrong gradients: does each op record its inputs "
                     "in _prev?") + (f"; {c.message}" if c.message else "")
    else:
        c.local_verdict = WRONG
        if alone.verdict in (ERROR, TIMEOUT) and alone.message and alone.message != c.message:
            c.message = f"{c.message}; {what} alone: {alone.message}" if c.message else alone.message


def _alone_comparison(name: str, got, expected: list[float], hidden: bool) -> Comparison:
    if isinstance(got, dict) and "failure" in got:
        return _failure(name, got, torch.tensor(expected, dtype=torch.float64), hidden)
    return compare(name, got, torch.tensor(expected, dtype=torch.float64))


@guarded
def judge_graphs(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """micrograd.backward / micrograd.reuse: each small graph globally, and backward() on its own."""
    results = judge(case, outputs, truth)
    alone = outputs.get("_alone") if isinstance(outputs.get("_alone"), dict) else {}
    nodes = outputs.get("_nodes") if isinstance(outputs.get("_nodes"), dict) else {}
    for c in results:
        graph = case.inputs["graphs"][c.name]
        expected = alone_truth(graph["program"], graph["weights"])
        _local(c, _alone_comparison(c.name, alone.get(c.name), expected, case.hidden),
               wrong_nodes(graph["program"], graph["node_specs"], nodes.get(c.name), outputs.get("_probe")))
        # micrograd.reuse teaches accumulation (the lecture's chapter on "a node used multiple times"): an
        # op that overwrites its inputs' gradients is exactly what these graphs test, so its `=` costs them
        # rather than being forgiven as a dependency's fault.
        if c.name in REUSE_PARTS:
            _accumulation_taught(c, outputs.get("_probe"), GRAPH_OPS_REUSE.get(c.name, ()))
    return results


REUSE_PARTS = ("a + a", "a * a", "b + b (b = a + a)", "diamond", "a*x + a*y", "x*a + y*a")


def _accumulation_taught(c: Comparison, probe, ops) -> None:
    """A check that teaches accumulation (a value used twice: micrograd.reuse, the fan-out of
    micrograd.expressions; the lecture's chapter on "a node used multiple times") is not forgiven as a
    dependency's fault when the op it depends on overwrites its inputs' gradients (`=` for `+=`): that
    mistake is exactly what the check tests."""
    overwriting = overwriting_ops(probe, ops)
    if c.passed or not overwriting or c.verdict not in (WRONG, APPROX):
        return
    c.local_verdict = WRONG
    c.mistake = "overwrite_not_accumulate"
    c.hint = HINTS["overwrite_not_accumulate"]
    names = " and ".join(f"`{o}`" for o in overwriting)
    c.message = f"{names} {'overwrites' if len(overwriting) == 1 else 'overwrite'} the gradient its inputs " \
                "already hold (`=` for `+=`): a value used twice gets only one of its contributions"


@guarded
def judge_expression(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """Globally against PyTorch; where wrong, backward() on its own on the same graph (its span of nodes)
    and the op nodes measured alone."""
    results = judge(case, outputs, truth)
    program = case.inputs["program"]
    n_leaves, n_nodes = len(program["leaves"]), len(program["leaves"]) + len(program["ops"])
    expected = alone_truth(program, case.inputs["weights"])
    got_alone = (outputs.get("_alone") or {}).get("expression") if isinstance(outputs.get("_alone"), dict) else None
    bad = wrong_nodes(program, case.inputs["node_specs"],
                      (outputs.get("_nodes") or {}).get("expression") if isinstance(outputs.get("_nodes"), dict) else None,
                      outputs.get("_probe"))
    spans = {"leaf grads": slice(0, n_leaves), "node grads": slice(n_leaves, n_nodes - 1),
             "output": slice(n_nodes - 1, n_nodes)}
    for c in results:
        span = spans[c.name]
        if isinstance(got_alone, list) and len(got_alone) == n_nodes:
            alone = compare(c.name, got_alone[span], torch.tensor(expected[span], dtype=torch.float64))
        else:
            alone = _alone_comparison(c.name, got_alone, expected[span], case.hidden)
        if c.name == "output":  # [out.data, out.grad]: the forward value is the ops', the seed backward()'s
            got = outputs.get("output")
            if _usable(got) and isinstance(got, list) and len(got) == 2 and not close(got[0], truth["output"][0]):
                bad = {**bad} or {"the forward pass": "is wrong"}
        _local(c, alone, bad)
        if c.name != "output":  # the graphs have fan-out: accumulation is what they test
            _accumulation_taught(c, outputs.get("_probe"), tuple(case.info.get("ops", ())))
    return results


@guarded
def judge_deep_chain(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    results = judge(case, outputs, truth)
    expected = 1.0
    for m in reversed(case.inputs["m"][: case.inputs["alone_steps"]]):
        expected = m * (0.0 + 1.0 * expected)
    alone = _alone_comparison("out, x.grad", (outputs.get("_alone") or {}).get("out, x.grad")
                              if isinstance(outputs.get("_alone"), dict) else None, [expected], case.hidden)
    for c in results:
        _local(c, alone, probe_bad_ops(outputs.get("_probe"), ("add", "mul")))
        if c.local_verdict == WRONG and alone.mistake:
            c.mistake = c.mistake or alone.mistake
    return results


def _local_derivative_right(probe, op: str) -> bool:
    """Does the op's backward compute its local derivative right at every probe point, whether it then adds it
    into the inputs' gradients (right) or overwrites them (`=` for `+=`, a catalogued mistake)? A backward that
    does nothing, sets a constant or copies the upstream gradient does not."""
    local = probe.get("local") if isinstance(probe, dict) and isinstance(probe.get("local"), dict) else {}
    truth = probe_truth()["local"]
    specs = PROBE_LOCAL.get(op, ())
    for i, spec in enumerate(specs):
        got, expected = local.get(f"{op}{i}"), truth.get(f"{op}{i}")
        if not isinstance(got, list) or not isinstance(expected, list) or len(got) != len(expected) or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got):
            return False
        preset = [spec["a_grad"], spec["b_grad"]][:len(got) - 1]
        overwritten = [expected[0]] + [e - p for e, p in zip(expected[1:], preset)]
        if not (close(got, expected) or close(got, overwritten)):
            return False
    return bool(specs)


@guarded
def judge_ops(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """Each op alone; a derived op (`a - b`) whose forward value is right and whose error comes from a base
    op it is built from is correct on its own."""
    results = judge(case, outputs, truth)
    by_shown = {c.name: c for c in results}
    probe = outputs.get("_probe")
    # Doing nothing earns nothing: where no base op the probe measures has its local derivative right (each
    # does nothing, sets a constant or copies the upstream gradient), nothing of the student's is right yet,
    # and a derived op (given code) earns no "correct; depends on" credit; an op whose local
    # gradient is 0 in this case (relu's flat side: the input grads stay as they were set) passes with a
    # backward that does nothing, so it earns only where the probe finds it right on both sides.
    probed = [op for op in ("add", "mul", "pow") if op in (case.inputs.get("probe_ops") or ())]
    nothing_right = bool(probed) and not any(_local_derivative_right(probe, op) for op in probed)
    for name, c in by_shown.items():
        expected = truth.get(name)
        op = next((k for k, shown in SHOWN.items() if shown == name), None)
        spec = (case.inputs.get("ops") or {}).get(op) if isinstance(case.inputs.get("ops"), dict) else None
        preset = [spec.get(k) for k in ("a_grad", "b_grad") if k in spec] if isinstance(spec, dict) else []
        if c.passed and op in BASE_OPS and isinstance(expected, torch.Tensor) and expected.numel() > 1 and \
                len(preset) >= expected.numel() - 1 and \
                close(expected[1:], torch.tensor(preset[:expected.numel() - 1], dtype=torch.float64)) and \
                op in (case.inputs.get("probe_ops") or ()) and probe_bad_ops(probe, (op,)):
            c.verdict, c.local_verdict = WRONG, None
            c.message = (f"right here only because its local gradient is 0 at this input; {name} is wrong elsewhere "
                         "(a backward that does nothing passes here too)")
    for key, base in BUILT_FROM.items():
        c = by_shown.get(SHOWN[key])
        got = outputs.get(SHOWN[key])
        if c is None or c.passed or not _usable(got) or not isinstance(got, list) or \
                not close(got[0], truth[SHOWN[key]][0]):
            continue
        bad = {SHOWN[b]: op_failure(outputs.get(SHOWN[b]), truth[SHOWN[b]].tolist()) for b in base}
        bad = {k: v for k, v in bad.items() if v}
        c.local_verdict = APPROX if bad and not nothing_right else WRONG
        if bad and not nothing_right:
            c.message = f"correct; depends on {depends_on(bad)}" + (f" ({c.message})" if c.message else "")
    return results


# -- nn ---------------------------------------------------------------------------------------------------------

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


@guarded
def judge_nn(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    inputs = case.inputs
    variant = nn_variant(inputs, outputs.get("forward"))
    ref = nn_reference(inputs, variant)
    if variant != "relu":
        # The lecture's Neuron (`act.tanh()` on every layer, or on the hidden ones) is an MLP as right as the
        # template's relu one: judged against that network's own forward pass, gradients and step.
        truth = {**truth, "forward": ref["forward"], "gradients": ref["grads"],
                 "SGD step": torch.tensor([ref["loss_before"], ref["loss_after"]], dtype=torch.float64)}
    results = judge(case, outputs, truth)
    by = {c.name: c for c in results}
    cover = outputs.get("_cover") if isinstance(outputs.get("_cover"), list) else None
    probe = outputs.get("_probe")
    n, _ = _structure(inputs)

    c = by["parameters"]
    problem = parameters_problem(inputs, cover)
    if c.passed and problem:
        c.verdict, c.message = WRONG, f"parameters(): {problem}"
    count = outputs.get("parameters")
    if not c.passed and isinstance(count, int) and not isinstance(count, bool):
        # A count, said as one: "41 expected, 32 returned: the biases (b) are missing", not a tensor diff.
        c.message = f"parameters(): {n} expected, {count} returned" + (f": {problem}" if problem else "")

    c = by["forward"]
    if not c.passed and c.verdict != "not_implemented":
        bad = probe_bad_ops(probe, ("add", "mul", "relu", "tanh") if variant != "relu" else ("add", "mul", "relu"),
                            forward_only=True)
        if bad:
            c.local_verdict = APPROX
            c.message = f"forward is correct; depends on {depends_on(bad)}" + (f" ({c.message})" if c.message else "")

    c = by["gradients"]
    grads = outputs.get("gradients")
    if not c.passed and _usable(grads):
        propagated = outputs.get("_propagated")
        ops = ("add", "mul", "pow", "relu") + (("tanh",) if variant != "relu" else ())
        bad = probe_bad_ops(probe, ops)
        if _usable(propagated) and close(propagated, ref["grads"]):
            c.local_verdict, dep = APPROX, "backward(), which is wrong"
        elif bad and (outputs.get("_connected") == [True] * n or any("_prev" in how for how in bad.values())):
            # the ops explain it, and the graph reaches every parameter (unless an op cuts it off itself)
            c.local_verdict, dep = APPROX, depends_on(bad)
        else:
            c.local_verdict, dep = WRONG, ""
        if dep:
            c.message = f"the gradients are correct for your MLP; depend on {dep}" + (f" ({c.message})" if c.message else "")

    c = by["SGD step"]
    got = outputs.get("SGD step")
    if not c.passed and _usable(got) and _usable(grads) and isinstance(grads, list) and len(grads) == n:
        steps = [k for k in cover if k >= 0] if cover is not None else None
        own = nn_reference(inputs, variant, grads=grads, cover=steps)
        expected = [own["loss_before"], own["loss_after"]]
        informative = not close(own["loss_after"], own["loss_before"])  # a step that changes nothing proves nothing
        if informative and close(got, expected):
            c.local_verdict = APPROX
            parts = [p for p, bad in (("the gradients", not by["gradients"].passed),
                                      ("parameters()", not by["parameters"].passed),
                                      ("the forward pass", not by["forward"].passed)) if bad]
            verb = "is" if parts in (["parameters()"], ["the forward pass"]) else "are"
            c.message = f"the step is correct; depends on {' and '.join(parts) or 'the parts above'}, which " \
                        f"{verb} wrong" + (f" ({c.message})" if c.message else "")
        else:
            c.local_verdict = WRONG
        if isinstance(got, list) and len(got) == 2 and got[1] >= got[0]:
            c.message = f"the loss did not go down ({got[0]:.6g} -> {got[1]:.6g}); {c.message}"

    c = by["zero_grad"]
    got = outputs.get("zero_grad")
    if not c.passed and cover is not None and _usable(got):
        covered = set(cover)
        expected = [0.0 if k in covered else 1.0 + k for k in range(n)]
        if covered and close(got, expected):  # with no parameter covered, a zero_grad doing nothing is "right"
            c.local_verdict = APPROX
            c.message = "zero_grad() is correct; depends on parameters(), which is wrong"
        else:
            c.local_verdict = WRONG
    return results


# -- the exercises ------------------------------------------------------------------------------------------

_DRIVERS = "autograder.assignments.micrograd.student_side"
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

_ENGINE = dict(module=ENGINE, blocked_imports=("torch",), blocked_why=NO_TORCH, time_limit=10.0, judge=judge,
               mistakes=ENGINE_MISTAKES)


def exercise(id: str, cases, **kwargs) -> Exercise:
    """An Exercise whose case builder gets its id from here: the id is written once, and hidden seeds
    derive from it."""
    return Exercise(id=id, cases=functools.partial(cases, exercise_id=id), **{**_ENGINE, **kwargs})


EXERCISES = [
    exercise("micrograd.ops", ops_cases, entry="Value", points=8, title="every operation's forward and backward, alone",
             driver=f"{_DRIVERS}:ops_driver", truth=ops_truth, judge=judge_ops, mistakes=OP_MISTAKES),
    exercise("micrograd.backward", graph_cases(("seed", "chain")), entry="Value.backward", points=3,
             title="backward(): the seed gradient and reverse topological order", driver=f"{_DRIVERS}:graphs_driver",
             truth=graph_truth, judge=judge_graphs),
    exercise("micrograd.reuse", graph_cases(REUSE_PARTS), entry="Value",
             points=3, title="a value used twice, a re-used non-leaf node", driver=f"{_DRIVERS}:graphs_driver",
             truth=graph_truth, judge=judge_graphs),
    exercise("micrograd.expressions", expression_cases, entry="Value", points=6,
             title="random expression graphs with fan-out, against PyTorch float64",
             driver=f"{_DRIVERS}:expression_driver", truth=expression_truth, judge=judge_expression),
    exercise("micrograd.deep_chain", deep_chain_cases, entry="Value.backward", points=1,
             title="a 10,000-node chain (a recursive topological sort hits the recursion limit)",
             driver=f"{_DRIVERS}:deep_chain_driver", truth=deep_chain_truth, judge=judge_deep_chain, time_limit=30.0),
    exercise("micrograd.nn", nn_cases, entry="MLP", points=4,
             title="nn: parameters, forward, gradients, one SGD step, zero_grad",
             driver=f"{_DRIVERS}:nn_driver", truth=nn_truth, files=("micrograd/engine.py", "micrograd/nn.py"),
             module=NN, judge=judge_nn, mistakes=NN_MISTAKES),
]
