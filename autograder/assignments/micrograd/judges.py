"""micrograd, grader side: the judges. Each check is judged globally against PyTorch with the exercise's
tolerance (declared in `__init__`; every micrograd exercise has the float64 default, which the local checks'
`close` uses too) and, where it fails, locally: is the function this check is about right, given what it
depends on? (See `__init__` for what each local check measures.)"""
from __future__ import annotations

import functools

import torch

from autograder.core.compare import APPROX, ERROR, TIMEOUT, WRONG, Comparison, compare
from autograder.core.diagnose import close
from autograder.core.exercise import DTYPE_DEFAULT, Case, takes_tolerance
from autograder.assignments.micrograd.cases import BASE_OPS, BUILT_FROM, alone_truth, nn_reference, probe_truth, torch_op
from autograder.assignments.micrograd.mistakes import (GRAPH_OPS as GRAPH_OPS_REUSE, HINTS, _structure, depends_on,
                                                       nn_variant, op_failure, overwriting_ops, parameters_problem,
                                                       probe_bad_ops, _usable)
from autograder.assignments.micrograd.student_side import PROBE_LOCAL, SHOWN


# -- the global verdict, and the local one where it fails ---------------------------------------------------------------------------------------------

def _failure(name: str, got: dict, expected, hidden: bool) -> Comparison:
    verdict = {"timeout": TIMEOUT, "wrong": WRONG}.get(got.get("failure"), ERROR)
    message = str(got.get("message", ""))[:300]
    if hidden and verdict == ERROR and got.get("short") != message:  # the student's text could print inputs
        message = f"{str(got.get('short', ''))[:300]} (details withheld for hidden cases)"
    shape = tuple(getattr(expected, "shape", ()))
    mistake = "recursion_limit" if message.startswith("RecursionError") else None
    return Comparison(name, verdict, expected_shape=shape, message=message, mistake=mistake)


@takes_tolerance
def judge(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """`compare` every check; a part that failed in the student's process keeps its own one-line reason."""
    results = []
    for name, expected in truth.items():
        got = outputs.get(name) if isinstance(outputs, dict) else None
        if isinstance(got, dict) and "failure" in got:
            results.append(_failure(name, got, expected, case.hidden))
        else:
            results.append(compare(name, got, expected, tolerance=tolerance))
    return results


def guarded(local_judge):
    """The local analysis reads parts the student's process sent (`_alone`, `_nodes`, `_cover`...): where they
    are malformed (a broken or hostile process), the checks keep their global verdicts instead of the judge
    raising."""
    @functools.wraps(local_judge)
    def judge_case(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
        try:
            return local_judge(case, outputs, truth, tolerance=tolerance)
        except Exception:  # noqa: anything malformed costs the local verdicts only
            return judge(case, outputs if isinstance(outputs, dict) else {}, truth, tolerance=tolerance)
    return takes_tolerance(judge_case)


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
def judge_graphs(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """micrograd.backward / micrograd.reuse: each small graph globally, and backward() on its own."""
    results = judge(case, outputs, truth, tolerance=tolerance)
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
def judge_expression(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """Globally against PyTorch; where wrong, backward() on its own on the same graph (its span of nodes)
    and the op nodes measured alone."""
    results = judge(case, outputs, truth, tolerance=tolerance)
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
def judge_deep_chain(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    results = judge(case, outputs, truth, tolerance=tolerance)
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
def judge_ops(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """Each op alone; a derived op (`a - b`) whose forward value is right and whose error comes from a base
    op it is built from is correct on its own."""
    results = judge(case, outputs, truth, tolerance=tolerance)
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


@guarded
def judge_nn(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    inputs = case.inputs
    variant = nn_variant(inputs, outputs.get("forward"))
    ref = nn_reference(inputs, variant)
    if variant != "relu":
        # The lecture's Neuron (`act.tanh()` on every layer, or on the hidden ones) is an MLP as right as the
        # template's relu one: judged against that network's own forward pass, gradients and step.
        truth = {**truth, "forward": ref["forward"], "gradients": ref["grads"],
                 "SGD step": torch.tensor([ref["loss_before"], ref["loss_after"]], dtype=torch.float64)}
    results = judge(case, outputs, truth, tolerance=tolerance)
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
