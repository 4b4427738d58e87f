"""The reference engine and nn (in this process), and the micrograd exercise data (cases, truths, diagnosis)."""
from __future__ import annotations

import math
import random
import sys
import types

import pytest
import torch

from autograder.assignments import micrograd as mg
from autograder.assignments.micrograd import student_side
from autograder.core.exercise import Seeds

EX = {ex.id: ex for ex in mg.EXERCISES}


@pytest.fixture(scope="module")
def ref(root):
    """reference/micrograd imported as `micrograd`, then forgotten (the template has the same name)."""
    def forget():
        for name in [m for m in sys.modules if m == "micrograd" or m.startswith("micrograd.")]:
            del sys.modules[name]
    forget()
    sys.path.insert(0, str(root / "reference"))
    try:
        import micrograd.engine
        import micrograd.nn
        yield types.SimpleNamespace(Value=micrograd.engine.Value, nn=micrograd.nn)
    finally:
        sys.path.remove(str(root / "reference"))
        forget()


# -- micrograd's published numbers ------------------------------------------------------------------------

def test_readme_expression(ref):
    Value = ref.Value
    a, b = Value(-4.0), Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    assert f"{g.data:.4f}" == "24.7041"
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


def test_sanity_check(ref):
    x = ref.Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert (y.data, x.grad) == (-20.0, 46.0)


# -- the engine's contract -----------------------------------------------------------------------------------

def test_api_is_micrograds(ref):
    a = ref.Value(2.0, label="a")
    b = ref.Value(3.0)
    out = a * b
    assert (out.data, out.grad, out._op, a.label) == (6.0, 0.0, "*", "a")
    assert out._prev == {a, b}
    assert callable(out._backward)


def test_reflected_and_derived_forms(ref):
    Value = ref.Value
    for build, value, grad in [
        (lambda a: 2 * a, 6.0, 2.0), (lambda a: 1 - a, -2.0, -1.0), (lambda a: 2 / a, 2 / 3, -2 / 9),
        (lambda a: a + 1, 4.0, 1.0), (lambda a: -a, -3.0, -1.0), (lambda a: a - 1, 2.0, 1.0),
        (lambda a: a / 2, 1.5, 0.5), (lambda a: a**-1, 1 / 3, -1 / 9), (lambda a: a**0.5, math.sqrt(3), 0.5 / math.sqrt(3)),
    ]:
        a = Value(3.0)
        out = build(a)
        out.backward()
        assert out.data == pytest.approx(value, rel=1e-15) and a.grad == pytest.approx(grad, rel=1e-15)


def test_gradients_accumulate_for_a_reused_leaf_and_non_leaf(ref):
    a = ref.Value(3.0)
    b = a + a
    c = b + b
    c.backward()
    assert (b.grad, a.grad) == (2.0, 4.0)
    a = ref.Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0


def test_backward_through_a_100000_node_chain(ref):
    x = ref.Value(1.0)
    v = x
    for _ in range(100_000):
        v = v * 1.00001
    assert sys.getrecursionlimit() < 100_000
    v.backward()
    assert x.grad == pytest.approx(1.00001**100_000, rel=1e-9)


@pytest.mark.parametrize("x", [1000.0, -1000.0, 710.0, -745.0])
def test_tanh_and_sigmoid_saturate_without_overflow(ref, x):
    t, s = ref.Value(x).tanh(), ref.Value(x).sigmoid()
    assert t.data == math.copysign(1.0, x) and s.data == (1.0 if x > 0 else pytest.approx(0.0, abs=1e-300))
    t.backward()
    s.backward()
    assert list(t._prev)[0].grad == 0.0 and list(s._prev)[0].grad == pytest.approx(0.0, abs=1e-300)


def test_invalid_inputs_raise_clear_errors(ref):
    Value = ref.Value
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="positive"):
            Value(bad).log()
    with pytest.raises(ZeroDivisionError, match="negative power"):
        Value(0.0) ** -1
    with pytest.raises(ValueError, match="complex"):
        Value(-2.0) ** 0.5
    with pytest.raises(OverflowError, match="largest float"):
        Value(1000.0).exp()


def test_every_op_matches_torch_float64(ref):
    """The reference against the truth the grader uses, at the public ops inputs."""
    for case in EX["micrograd.ops"].cases(Seeds(hidden=False)):
        for name, spec in case.inputs["ops"].items():
            got = student_side._one_op(ref.Value, name, spec)
            assert got == pytest.approx(mg.torch_op(name, spec), rel=1e-12, abs=1e-14), name


# -- nn ------------------------------------------------------------------------------------------------------

def test_mlp_parameters_and_forward_shapes(ref):
    random.seed(0)
    model = ref.nn.MLP(3, [4, 4, 1])
    assert len(model.parameters()) == 4 * 4 + 4 * 5 + 5 == 41
    assert isinstance(model([1.0, 2.0, 3.0]), ref.Value)
    assert len(ref.nn.MLP(2, [3, 2])([1.0, -1.0])) == 2
    assert len(ref.nn.Neuron(3, nonlin=False).parameters()) == 4


def test_training_on_the_lecture_data_lowers_the_loss(ref):
    random.seed(1337)
    model = ref.nn.MLP(3, [4, 4, 1])
    losses = []
    for _ in range(20):
        loss = sum((model(x) - y[0]) ** 2 for x, y in zip(mg.LECTURE_XS, mg.LECTURE_YS))
        model.zero_grad()
        assert all(p.grad == 0 for p in model.parameters())
        loss.backward()
        for p in model.parameters():
            p.data -= 0.01 * p.grad
        losses.append(loss.data)
    assert losses[-1] < 0.5 * losses[0]


# -- exercise data: cases, truths, diagnosis --------------------------------------------------------------------

def consumers(program):
    n = len(program["leaves"])
    used = [0] * (n + len(program["ops"]))
    for name, *args in program["ops"]:
        for kind, a in zip(mg.OPS[name][0], args):
            if kind == "n":
                used[a] += 1
    return used


def test_random_expressions_have_fan_out_and_every_node_reaches_the_output():
    cases = EX["micrograd.expressions"].cases(Seeds(hidden=True, secret="test"))
    assert sum(c.hidden for c in cases) == 5 and sum(not c.hidden for c in cases) == 3
    for case in cases:
        program = case.inputs["program"]
        used = consumers(program)
        assert all(u > 0 for u in used[:-1]), "a node that does not reach the output"
        assert max(used) >= 2, "no fan-out"
        truth = mg.expression_truth(case)
        assert all(torch.isfinite(t).all() for t in truth.values())
        assert truth["output"][1] == 1.0


def test_hidden_cases_differ_from_public_and_do_not_name_their_seeds():
    for ex in mg.EXERCISES:
        cases = ex.cases(Seeds(hidden=True, secret="test"))
        public = [c for c in cases if not c.hidden]
        hidden = [c for c in cases if c.hidden]
        assert public and hidden, ex.id
        assert all(c.id.startswith("hidden-") and str(c.inputs) not in c.label for c in hidden)
        assert all(h.inputs != p.inputs for h in hidden for p in public), ex.id
        assert ex.cases(Seeds(hidden=False)) == public


def test_one_sgd_step_of_the_truth_lowers_the_loss():
    for case in EX["micrograd.nn"].cases(Seeds(hidden=True, secret="test")):
        truth = mg.nn_truth(case)
        before, after = truth["SGD step"].tolist()
        assert after < before, case.label


def test_probe_truth_from_first_principles():
    t = mg.probe_truth()
    v = mg.PROBE_VALUES
    assert t["a + a"] == [2.0] and t["a * a"] == [2 * v["a"]]
    assert t["b + b (b = a + a)"] == [2.0, 4.0]
    assert t["seed"] == [1.0, v["y"], v["x"], 1.0]
    # tanh's probe: pre-set grad + upstream * (1 - tanh(a)**2)
    spec = mg.PROBE_LOCAL["tanh"][0]
    assert t["local"]["tanh0"][1] == pytest.approx(spec["a_grad"] + spec["g"] * (1 - math.tanh(spec["a"]) ** 2))


def test_local_mistake_classifier_tells_the_mistakes_apart():
    spec = dict(a=0.8, b=-1.1, const=3, a_grad=0.3, b_grad=-0.2, g=1.7)
    t = math.tanh(spec["a"])
    right = [t, 0.3 + 1.7 * (1 - t**2)]
    assert mg.local_mistake("tanh", spec, right, right) is None
    cases = {"overwrite_not_accumulate": [t, 1.7 * (1 - t**2)],
             "uses_input_not_output": [t, 0.3 + 1.7 * (1 - 0.8**2)],
             "wrong_local_derivative": [t, 0.3 + (1 - t**2)]}
    for mistake, got in cases.items():
        assert mg.local_mistake("tanh", spec, got, right)[0] == mistake
    assert "out.grad" in mg.local_mistake("tanh", spec, cases["wrong_local_derivative"], right)[1]
    assert mg.local_mistake("tanh", spec, [t + 1, right[1] + 1], right) is None  # forward wrong: not a backward mistake


def test_engine_mistake_reads_the_probe():
    truth = mg.probe_truth()
    assert mg.engine_mistake(truth) is None
    seedless = {**truth, "seed": [0.0, 0.0, 0.0, 0.0]}
    assert mg.engine_mistake(seedless)[0] == "seed_grad_missing"
    unordered = {**truth, "diamond": [x + 1 for x in truth["diamond"]]}
    assert mg.engine_mistake(unordered)[0] == "no_topological_order"
    overwrite = {**truth, "a + a": [1.0]}
    assert mg.engine_mistake(overwrite)[0] == "overwrite_not_accumulate"
    assert mg.engine_mistake("not a probe") is None


def test_a_part_that_failed_keeps_its_reason_but_hidden_cases_withhold_the_students_text():
    got = {"failure": "error", "message": "ValueError: secret 2.55 (micrograd/engine.py, line 91, in _backward)",
           "short": "ValueError (micrograd/engine.py, line 91, in _backward)"}
    expected = torch.zeros(2, dtype=torch.float64)
    public, hidden = mg._failure("a.log()", got, expected, False), mg._failure("a.log()", got, expected, True)
    assert public.verdict == hidden.verdict == "error"
    assert "secret 2.55" in public.message and "line 91" in public.message
    assert "secret" not in hidden.message and "line 91" in hidden.message and "withheld" in hidden.message
    timeout = mg._failure("a.log()", {"failure": "timeout", "message": "did not finish within 1 s"}, expected, True)
    assert timeout.verdict == "timeout" and timeout.message == "did not finish within 1 s"
    recursion = {"failure": "error", "message": "RecursionError: maximum recursion depth exceeded (x.py, line 3)",
                 "short": "RecursionError: maximum recursion depth exceeded (x.py, line 3)"}
    assert mg._failure("out", recursion, expected, True).mistake == "recursion_limit"
