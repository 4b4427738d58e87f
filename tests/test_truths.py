"""Every PyTorch truth the grader relies on, validated numerically and independently of PyTorch.

A grader whose truth is wrong grades everyone wrong. For each registered assignment, each exercise's
public and hidden cases are built, `exercise.truth(case)` is computed (PyTorch autograd, as in grading), and each
truth gradient is compared by `autograder.core.gradcheck` with float64 centred differences of a forward
function written here again in numpy / plain Python: a second, independent implementation of the
forward pass, and no autograd at all on the numeric side. Large tensors are probed on sampled elements
(CS231n's `grad_check_sparse`).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from autograder.assignments import NAMES, exercises
from autograder.core.exercise import Seeds
from autograder.core.gradcheck import gradcheck

PUBLIC = Seeds(hidden=False)
# Public and hidden cases: the hidden configurations (float64, batch 2, other widths...) need a right truth
# as much as the public ones. A fixed secret here; graders draw other seeds of the same configurations.
ALL = Seeds(hidden=True, secret="tests/test_truths.py")


def np64(value) -> np.ndarray:
    """A case input or a truth as a float64 numpy array (tensors of any float dtype, lists, floats)."""
    if hasattr(value, "detach"):
        return value.detach().double().numpy()
    return np.asarray(value, dtype=np.float64)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def check(f, inputs, truths, upstream=None, samples=None, what=""):
    """gradcheck f at inputs against the truths (one per input); fail with gradcheck's own report."""
    result = gradcheck(f, *inputs, analytic=truths, upstream=upstream, samples=samples)
    assert result.ok, f"{what}: {result}"
    return result


# -- graphs ---------------------------------------------------------------------------------------------------

def graphs_checks(exercise_id, case, truth):
    """(what, f, inputs, upstream, truths) for each truth of a graphs case, forward in numpy."""
    i = case.inputs
    if exercise_id in ("graphs.AddGate", "graphs.MultiplyGate", "graphs.MaxGate"):
        op = {"graphs.AddGate": np.add, "graphs.MultiplyGate": np.multiply, "graphs.MaxGate": np.maximum}[exercise_id]
        yield "dx, dy", lambda x, y: op(x, y), [np64(i["x"]), np64(i["y"])], np64(i["dout"]), [truth["dx"], truth["dy"]]
        if "tie" in truth:  # both inputs at the same value: the centred difference is the even split
            yield "tie", lambda x, y: op(x, y), [np64(i["tie"]), np64(i["tie"])], np64(i["tie_dout"]), \
                [truth["tie"][:, 0], truth["tie"][:, 1]]
    elif exercise_id == "graphs.SigmoidGate":
        yield "dx", sigmoid, [np64(i["x"])], np64(i["dout"]), [truth["dx"]]
    elif exercise_id == "graphs.simple_graph":
        yield "dx, dy, dz", lambda x, y, z: np.sum((x + y) * z), [np64(i[k]) for k in "xyz"], None, \
            [truth["dx"], truth["dy"], truth["dz"]]
    elif exercise_id == "graphs.sigmoid_neuron":
        yield "dw, dx", lambda w, x: np.sum(sigmoid(w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2])), \
            [np64(i["w"]), np64(i["x"])], None, [truth["dw"], truth["dx"]]
    elif exercise_id == "graphs.l2_of_matvec":
        yield "dW, dx", lambda W, x: float(np.sum((W @ x) ** 2)), [np64(i["W"]), np64(i["x"])], None, \
            [truth["dW"], truth["dx"]]
    else:
        raise AssertionError(f"{exercise_id}: no independent forward written for this exercise's truth")


@pytest.mark.parametrize("exercise", exercises("graphs"), ids=lambda ex: ex.id)
def test_graphs_truths(exercise):
    for case in exercise.cases(ALL):
        truth = exercise.truth(case)
        covered = set()
        for what, f, inputs, upstream, truths in graphs_checks(exercise.id, case, truth):
            check(f, inputs, truths, upstream=upstream, what=f"{exercise.id} {case.id} {what}")
            covered |= {name.strip() for name in what.split(",")}
        assert covered == set(truth), f"{exercise.id}: truths not validated: {set(truth) - covered}"


def test_a_wrong_truth_would_be_caught():
    """The validation has teeth: the l2 truth with one element off by 0.1% fails it, at that element."""
    exercise = next(ex for ex in exercises("graphs") if ex.id == "graphs.l2_of_matvec")
    case = exercise.cases(PUBLIC)[2]
    truth = exercise.truth(case)
    dW = truth["dW"].clone()
    dW[1, 0] *= 1.001
    (what, f, inputs, upstream, _), = graphs_checks(exercise.id, case, truth)
    result = gradcheck(f, *inputs, analytic=[dW, truth["dx"]])
    assert not result.ok and (result.worst_input, result.worst_index) == ("input 0 (W)", (1, 0))


def test_every_assignment_is_covered():
    """A new assignment must bring its truth validation here: a `test_<name>_truths...` in this file."""
    missing = [name for name in NAMES if not any(k.startswith(f"test_{name}_truths") for k in globals())]
    assert NAMES and not missing, f"no truth validation for {missing}"


def test_micrograd_exercises_truths_are_the_notebooks_answers():
    """The notebook's own expected answers, and difference quotients in plain `math`."""
    from autograder.assignments.micrograd_exercises.student_side import lecture_f
    ex = {e.entry: e for e in exercises("micrograd_exercises")}
    case = ex["gradf"].cases(PUBLIC)[0]
    truth = ex["gradf"].truth(case)
    got = [float(truth[k][0]) for k in ("df_da", "df_db", "df_dc")]
    assert got == pytest.approx([-12.353553390593273, 10.25699027111255, 0.0625], abs=1e-12)
    case = ex["numerical_grad2"].cases(PUBLIC)[0]
    (a, b, c), h = case.inputs["points"][0], case.inputs["h"]
    expected = (lecture_f(a, b + h, c) - lecture_f(a, b - h, c)) / (2 * h)
    assert float(ex["numerical_grad2"].truth(case)["df_db"][0]) == pytest.approx(expected, rel=1e-10)
    case = ex["nll"].cases(PUBLIC)[0]
    assert ex["nll"].truth(case)["dlogits"].tolist() == pytest.approx(
        [0.041772570515350445, 0.8390245074625319, 0.005653302662216329, -0.8864503806400986], abs=1e-12)


# -- micrograd --------------------------------------------------------------------------------------------------
# The grader's programs are interpreted again here in plain Python floats and `math`, with an op table of
# our own: "n" operands are node indices, "c" operands constants (the program format of the assignment).

PY_OPS = {
    "add": ("nn", lambda a, b: a + b), "mul": ("nn", lambda a, b: a * b), "pow": ("nc", lambda a, k: a ** k),
    "exp": ("n", math.exp), "log": ("n", math.log), "tanh": ("n", math.tanh), "relu": ("n", lambda a: max(a, 0.0)),
    "sigmoid": ("n", lambda a: 1.0 / (1.0 + math.exp(-a))), "neg": ("n", lambda a: -a),
    "sub": ("nn", lambda a, b: a - b), "div": ("nn", lambda a, b: a / b), "addc": ("nc", lambda a, c: a + c),
    "radd": ("cn", lambda c, a: c + a), "rsub": ("cn", lambda c, a: c - a), "rmul": ("cn", lambda c, a: c * a),
    "rdiv": ("cn", lambda c, a: c / a),
}


def evaluate(program: dict, override: dict | None = None) -> list[float]:
    """Every node's value; `override` {node: value} replaces a node's value (its inputs are then ignored),
    so d out / d node is the derivative of out with respect to that node, everything downstream recomputed."""
    override = override or {}
    nodes = [override.get(i, float(v)) for i, v in enumerate(program["leaves"])]
    for name, *args in program["ops"]:
        kinds, op = PY_OPS[name]
        value = op(*(nodes[a] if kind == "n" else a for kind, a in zip(kinds, args)))
        nodes.append(override.get(len(nodes), value))
    return nodes


def check_node_gradients(program: dict, node_indices, truths, what: str) -> None:
    """d(output)/d(node) for each node, numerically (perturbing that node alone) against the truth."""
    base = evaluate(program)
    for k, truth in zip(node_indices, truths):
        check(lambda v, k=k: evaluate(program, {k: v})[-1], [base[k]], [float(truth)], what=f"{what}, node {k}")


# The small graphs of micrograd.backward / micrograd.reuse as programs: (leaves, ops, nodes whose grads the truth lists)
MICROGRAD_GRAPHS = {
    "seed": (("x", "y", "z"), [["mul", 0, 1], ["add", 3, 2]], [4, 0, 1, 2]),
    "chain": (("x", "w", "u", "z"), [["mul", 0, 1], ["tanh", 4], ["mul", 5, 2], ["add", 6, 3], ["exp", 7]],
              [0, 1, 2, 3]),
    "a + a": (("a",), [["add", 0, 0]], [0]),
    "a * a": (("a",), [["mul", 0, 0]], [0]),
    "b + b (b = a + a)": (("a",), [["add", 0, 0], ["add", 1, 1]], [1, 0]),
    "diamond": (("a", "x"), [["mul", 0, 1], ["tanh", 2], ["mul", 3, 2], ["add", 4, 2]], [4, 3, 2, 0, 1]),
    "a*x + a*y": (("a", "x", "y"), [["mul", 0, 1], ["mul", 0, 2], ["add", 3, 4]], [0, 1, 2]),
    "x*a + y*a": (("a", "x", "y"), [["mul", 1, 0], ["mul", 2, 0], ["add", 3, 4]], [0, 1, 2]),
}


def check_small_graphs(values: dict, truth: dict, what: str) -> None:
    for part, expected in truth.items():
        names, ops, node_indices = MICROGRAD_GRAPHS[part]
        program = {"leaves": [values[n] for n in names], "ops": ops}
        check_node_gradients(program, node_indices, np64(expected), f"{what} {part}")


def check_op(name: str, spec: dict, expected, what: str) -> None:
    """[out, a.grad + pre-set a.grad (, b.grad + pre-set)] with out.grad = g."""
    kinds, op = PY_OPS[name]
    expected = np64(expected)
    n_inputs = kinds.count("n")
    inputs = [float(spec["a"]), float(spec["b"])][:n_inputs]

    def f(*xs):
        it = iter(xs)
        return op(*(spec["const"] if kind == "c" else next(it) for kind in kinds))
    assert expected[0] == pytest.approx(f(*inputs), rel=1e-12, abs=1e-12), f"{what}: forward value"
    pre = [spec["a_grad"], spec["b_grad"]][:n_inputs]
    check(f, inputs, [e - p for e, p in zip(expected[1:], pre)], upstream=float(spec["g"]), what=what)


def micrograd():
    from autograder.assignments import micrograd as mg
    if not mg.EXERCISES:
        pytest.skip("autograder/assignments/micrograd.py declares no EXERCISES yet")
    assert set(PY_OPS) == set(mg.OPS), "a micrograd op has no independent forward here: add it to PY_OPS"
    return mg


def nn_forward(params, xs):
    h = np64(xs)
    for i, layer in enumerate(params):
        W = np.array([neuron[:-1] for neuron in layer], dtype=np.float64)
        b = np.array([neuron[-1] for neuron in layer], dtype=np.float64)
        h = h @ W.T + b
        if i != len(params) - 1:
            h = np.maximum(h, 0.0)
    return h


def unflatten(p: np.ndarray, like: list) -> list:
    """The flat parameter vector back into layers of neurons of [weights..., bias] (the truth's order)."""
    out, k = [], 0
    for layer in like:
        out.append([])
        for neuron in layer:
            out[-1].append(list(p[k:k + len(neuron)]))
            k += len(neuron)
    return out


def check_micrograd_case(mg, exercise, case) -> None:
    truth = exercise.truth(case)
    what = f"{exercise.id} {case.id}"
    i = case.inputs
    if exercise.id == "micrograd.ops":
        by_shown = {shown: name for name, shown in mg.SHOWN.items()}
        assert set(truth) == set(by_shown)
        for shown, expected in truth.items():
            check_op(by_shown[shown], i["ops"][by_shown[shown]], expected, f"{what} {shown}")
    elif exercise.id in ("micrograd.backward", "micrograd.reuse"):
        for part, graph in i["graphs"].items():
            names, ops, node_indices = MICROGRAD_GRAPHS[part]
            assert graph["program"]["ops"] == ops and graph["report"] == node_indices, f"{what} {part}"
            check_node_gradients(graph["program"], node_indices, np64(truth[part]), f"{what} {part}")
    elif exercise.id == "micrograd.expressions":
        assert set(truth) == {"output", "leaf grads", "node grads"}, what
        program = i["program"]
        n = len(program["leaves"])
        nodes = evaluate(program)
        assert np64(truth["output"]).tolist() == pytest.approx([nodes[-1], 1.0], rel=1e-12, abs=1e-12)
        leaves = [float(v) for v in program["leaves"]]
        check(lambda *xs: evaluate({**program, "leaves": list(xs)})[-1], leaves, list(np64(truth["leaf grads"])),
              what=f"{what} leaf grads")
        check_node_gradients(program, range(n, len(nodes) - 1), np64(truth["node grads"]), f"{what} node grads")
    elif exercise.id == "micrograd.deep_chain":
        def chain(x):
            for m, c in zip(i["m"], i["c"]):
                x = x * m + c
            return x
        assert set(truth) == {"out, x.grad"}, what
        value, grad = np64(truth["out, x.grad"])
        assert value == pytest.approx(chain(float(i["x"])), rel=1e-12)
        check(chain, [float(i["x"])], [grad], what=what)
    elif exercise.id == "micrograd.nn":
        p = np.array([v for layer in i["params"] for neuron in layer for v in neuron], dtype=np.float64)
        ys = np64(i["ys"])

        def loss(p):
            return float(((nn_forward(unflatten(p, i["params"]), i["xs"]) - ys) ** 2).sum())
        assert set(truth) == {"parameters", "forward", "gradients", "SGD step", "zero_grad"}, what
        assert float(truth["parameters"]) == p.size
        assert np.allclose(np64(truth["forward"]), nn_forward(i["params"], i["xs"]), rtol=1e-12, atol=1e-12)
        check(loss, [p], [np64(truth["gradients"])], what=f"{what} gradients")
        assert not np64(truth["zero_grad"]).any() and np64(truth["zero_grad"]).size == p.size  # every grad 0
        before, after = np64(truth["SGD step"])
        stepped = p - i["lr"] * np64(truth["gradients"])  # the truth's gradient, validated just above
        assert [before, after] == pytest.approx([loss(p), loss(stepped)], rel=1e-9)
    else:
        raise AssertionError(f"{exercise.id}: no independent validation written for this exercise's truth")


def micrograd_exercises():
    from autograder.assignments import micrograd as mg
    return mg.EXERCISES or [None]


@pytest.mark.parametrize("exercise", micrograd_exercises(), ids=lambda ex: ex.id if ex else "none")
def test_micrograd_truths(exercise):
    mg = micrograd()
    for case in exercise.cases(ALL):
        check_micrograd_case(mg, exercise, case)


def test_micrograd_probe_truth():
    """The fixed probe graphs the micrograd diagnosis compares against are truths too."""
    mg = micrograd()
    truth = mg.probe_truth()
    for key, expected in truth["local"].items():
        name, index = key.rstrip("0123456789"), int(key[len(key.rstrip("0123456789")):])
        check_op(name, mg.PROBE_LOCAL[name][index], expected, f"probe {key}")
    check_small_graphs(mg.PROBE_VALUES, {k: v for k, v in truth.items() if k != "local"}, "probe")


def test_a_wrong_micrograd_truth_would_be_caught():
    mg = micrograd()
    spec = dict(a=0.6, b=-1.3, const=3, a_grad=0.25, b_grad=-0.5, g=1.5)
    right = mg.torch_op("tanh", spec)
    check_op("tanh", spec, right, "tanh")
    wrong = [right[0], right[1] + 1e-4]  # a derivative off by 1e-4 (relative ~1e-4)
    with pytest.raises(AssertionError, match="input 0"):
        check_op("tanh", spec, wrong, "tanh")
    values = dict(mg.PROBE_VALUES)
    truth = mg.torch_graphs(values)
    diamond = list(truth["diamond"])
    diamond[2] *= 0.5  # b's gradient with one of its three branches dropped would differ like this
    with pytest.raises(AssertionError, match="node 2"):
        check_small_graphs(values, {"diamond": diamond}, "diamond")


# -- backprop_ninja -----------------------------------------------------------------------------------------------
# The lecture's forward pass written again in numpy float64, step by step. `override` replaces a named
# tensor's value with everything downstream recomputed, so d loss / d (any intermediate) is numerical too.

NINJA_STEPS = (  # (output, inputs): the lecture's graph, for the consumers of each tensor
    ("emb", ("C",)), ("embcat", ("emb",)), ("hprebn", ("embcat", "W1", "b1")), ("bnmeani", ("hprebn",)),
    ("bndiff", ("hprebn", "bnmeani")), ("bndiff2", ("bndiff",)), ("bnvar", ("bndiff2",)), ("bnvar_inv", ("bnvar",)),
    ("bnraw", ("bndiff", "bnvar_inv")), ("hpreact", ("bngain", "bnraw", "bnbias")), ("h", ("hpreact",)),
    ("logits", ("h", "W2", "b2")), ("logit_maxes", ("logits",)), ("norm_logits", ("logits", "logit_maxes")),
    ("counts", ("norm_logits",)), ("counts_sum", ("counts",)), ("counts_sum_inv", ("counts_sum",)),
    ("probs", ("counts", "counts_sum_inv")), ("logprobs", ("probs",)), ("loss", ("logprobs",)),
)
NINJA_PARAMS = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")
NINJA_SAMPLES = 6  # elements probed per tensor: every tensor, a few elements each


def ninja_forward(params: dict, Xb, Yb, override: dict | None = None) -> dict:
    o = override or {}
    v = {name: o.get(name, np64(params[name])) for name in NINJA_PARAMS}
    Xb, Yb = np.asarray(Xb), np.asarray(Yb)
    n = Xb.shape[0]

    def put(name, value):
        v[name] = o.get(name, value)
    put("emb", v["C"][Xb])
    put("embcat", v["emb"].reshape(n, -1))
    put("hprebn", v["embcat"] @ v["W1"] + v["b1"])
    put("bnmeani", v["hprebn"].sum(0, keepdims=True) / n)
    put("bndiff", v["hprebn"] - v["bnmeani"])
    put("bndiff2", v["bndiff"] ** 2)
    put("bnvar", v["bndiff2"].sum(0, keepdims=True) / (n - 1))  # Bessel's correction, as in the lecture
    put("bnvar_inv", (v["bnvar"] + 1e-5) ** -0.5)
    put("bnraw", v["bndiff"] * v["bnvar_inv"])
    put("hpreact", v["bngain"] * v["bnraw"] + v["bnbias"])
    put("h", np.tanh(v["hpreact"]))
    put("logits", v["h"] @ v["W2"] + v["b2"])
    put("logit_maxes", v["logits"].max(1, keepdims=True))
    put("norm_logits", v["logits"] - v["logit_maxes"])
    put("counts", np.exp(v["norm_logits"]))
    put("counts_sum", v["counts"].sum(1, keepdims=True))
    put("counts_sum_inv", v["counts_sum"] ** -1)
    put("probs", v["counts"] * v["counts_sum_inv"])
    put("logprobs", np.log(v["probs"]))
    v["loss"] = -v["logprobs"][np.arange(n), Yb].mean()
    return v


def ninja_noise(name: str, truth: dict) -> float:
    """The rounding noise of a float32 gradient of `name`: ulps of the largest gradient flowing into it
    (dlogit_maxes and db1 are mathematically 0, so their own size says nothing about their noise)."""
    consumers = [out for out, ins in NINJA_STEPS if name in ins and out in truth]
    scale = max([float(np64(truth[name]).__abs__().max())] + [float(np.abs(np64(truth[c])).max()) for c in consumers])
    return 64 * float(np.finfo(np.float32).eps) * scale


def check_ninja_gradients(params, Xb, Yb, truth: dict, names, what: str) -> None:
    """d loss / d tensor for each name, numerically on sampled elements, against the truth."""
    base = ninja_forward(params, Xb, Yb)
    for name in names:
        check_one = gradcheck(lambda x, name=name: ninja_forward(params, Xb, Yb, {name: x})["loss"], base[name],
                              analytic=[truth[name]], atol=ninja_noise(name, truth), samples=NINJA_SAMPLES,
                              seed=len(name))
        assert check_one.ok, f"{what} d{name}: {check_one}"


def ninja():
    from autograder.assignments import backprop_ninja as bn
    if not bn.EXERCISES:
        pytest.skip("autograder/assignments/backprop_ninja.py declares no EXERCISES yet")
    return bn


def check_ninja_case(exercise, case, truth: dict | None = None) -> None:
    truth = exercise.truth(case) if truth is None else truth
    i = case.inputs
    what = f"{exercise.id} {case.id}"
    entry = exercise.id.split(".", 1)[1]
    if entry == "manual_backward":
        params = {name: i[name] for name in NINJA_PARAMS}
        assert set(truth) == {out for out, _ in NINJA_STEPS if out != "loss"} | set(NINJA_PARAMS)
        check_ninja_gradients(params, i["Xb"], i["Yb"], truth, sorted(truth), what)
    elif entry == "forward_backward":
        fwd = ninja_forward(i["params"], i["Xb"], i["Yb"])
        assert float(truth["loss"]) == pytest.approx(fwd["loss"], rel=1e-5)
        check_ninja_gradients(i["params"], i["Xb"], i["Yb"], truth, [k for k in truth if k != "loss"], what)
    elif entry == "cross_entropy_backward":
        assert set(truth) == {"logits"}, what
        Yb = np.asarray(i["Yb"])

        def loss(logits):  # log-sum-exp with the max subtracted: finite for logits of any size
            z = logits - logits.max(1, keepdims=True)
            return float((np.log(np.exp(z).sum(1)) - z[np.arange(len(Yb)), Yb]).mean())
        check(loss, [np64(i["logits"])], [truth["logits"]], samples=40, what=what)
    elif entry == "batchnorm_backward":
        assert set(truth) == {"hprebn"}, what
        gain = np64(i["bngain"])

        def batchnorm(x):
            d = x - x.mean(0, keepdims=True)
            return gain * d * (((d ** 2).sum(0, keepdims=True) / (x.shape[0] - 1)) + 1e-5) ** -0.5
        check(batchnorm, [np64(case.info["hprebn"])], [truth["hprebn"]], upstream=np64(i["dhpreact"]), samples=40,
              what=what)
    elif entry == "tanh_backward":
        assert set(truth) == {"hpreact"}, what
        check(np.tanh, [np64(case.info["hpreact"])], [truth["hpreact"]], upstream=np64(i["dh"]), samples=40,
              what=what)
        saturated = gradcheck(np.tanh, np64(case.info["hpreact"])[0, :4], upstream=np64(i["dh"])[0, :4],
                              analytic=[truth["hpreact"][0, :4]])  # 12, -12, 30 and 0: every one probed
        assert saturated.ok, f"{what} saturated units: {saturated}"
    elif entry == "embedding_backward":
        assert set(truth) == {"C"}, what
        Xb = np.asarray(i["Xb"])
        C = np.zeros((i["num_embeddings"], i["demb"].shape[-1]))
        check(lambda C: C[Xb], [C], [truth["C"]], upstream=np64(i["demb"]), what=what)
    elif entry == "train":
        assert set(truth) == {"losses", "lowers_loss"}, what  # lowers_loss is a pass/fail flag, not a number
        check_training(i, truth, what)
    else:
        raise AssertionError(f"{exercise.id}: no independent validation written for this exercise's truth")


def check_training(i: dict, truth: dict, what: str) -> None:
    """The first two losses of the SGD run: step 1 with a fully numerical gradient of every parameter.
    (The same batches: drawn with the seeded generator the template prescribes; no autograd involved.)"""
    import torch
    from autograder.core.gradcheck import numerical_gradient
    g = torch.Generator().manual_seed(i["seed"])
    batches = [torch.randint(0, i["X"].shape[0], (i["batch_size"],), generator=g) for _ in range(2)]
    params = {name: np64(i["params"][name]) for name in NINJA_PARAMS}
    Xb, Yb = i["X"][batches[0]].numpy(), i["Y"][batches[0]].numpy()
    values = [params[name] for name in NINJA_PARAMS]
    loss0 = ninja_forward(params, Xb, Yb)["loss"]
    grads = numerical_gradient(lambda *ps: ninja_forward(dict(zip(NINJA_PARAMS, ps)), Xb, Yb)["loss"], *values)
    stepped = {name: p - i["lr"] * dp for name, p, dp in zip(NINJA_PARAMS, values, grads)}
    loss1 = ninja_forward(stepped, i["X"][batches[1]].numpy(), i["Y"][batches[1]].numpy())["loss"]
    assert np64(truth["losses"])[:2].tolist() == pytest.approx([loss0, loss1], rel=1e-5), what


def ninja_exercises():
    from autograder.assignments import backprop_ninja as bn
    return bn.EXERCISES or [None]


@pytest.mark.parametrize("exercise", ninja_exercises(), ids=lambda ex: ex.id if ex else "none")
def test_backprop_ninja_truths(exercise):
    ninja()
    for case in exercise.cases(ALL):
        check_ninja_case(exercise, case)


def test_a_wrong_ninja_truth_would_be_caught():
    """dhprebn with Bessel's correction dropped (a 1/n vs 1/(n-1) variance), the classic slip, is caught."""
    bn = ninja()
    exercise = next(ex for ex in bn.EXERCISES if ex.id.endswith("batchnorm_backward"))
    case = exercise.cases(PUBLIC)[1]  # batch 7: n/(n-1) = 1.17
    x = case.inputs
    n, dh, raw, k = x["dhpreact"].shape[0], x["dhpreact"], x["bnraw"], x["bngain"] * x["bnvar_inv"]
    biased = k / n * (n * dh - dh.sum(0) - raw * (dh * raw).sum(0))
    check_ninja_case(exercise, case)  # the real truth passes
    with pytest.raises(AssertionError, match="FAILED"):
        check_ninja_case(exercise, case, {"hprebn": biased})
