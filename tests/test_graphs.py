"""The graphs assignment (CS231n lecture 4): reference full marks, template zero, every catalogued mistake
caught with its id, and correct solutions written differently accepted."""
from __future__ import annotations

import pytest
import torch

from autograder.assignments import exercises
from autograder.assignments.graphs import matvec_cases, matvec_truth, neuron_cases, neuron_truth, \
    simple_graph_cases, simple_graph_truth
from autograder.core.compare import NOT_IMPLEMENTED, PASSING
from autograder.core.exercise import Seeds
from autograder.core.pipeline import grade

EXERCISES = {ex.id: ex for ex in exercises("graphs")}


@pytest.fixture(scope="module")
def reference(root):
    return (root / "reference" / "graphs.py").read_text()


def variant(tmp_path, reference, *edits):
    """The reference with each (old, new) text edit applied: a student's submission differing in one place."""
    source = reference
    for old, new in edits:
        assert old in source, f"edit target not in reference/graphs.py: {old!r}"
        source = source.replace(old, new)
    (tmp_path / "graphs.py").write_text(source)
    return tmp_path


def graded(runner, submission, exercise_id, hidden=False):
    return grade(submission, [EXERCISES[exercise_id]], hidden=hidden, runner=runner).exercises[0]


def checks(result):
    return {c.name: c for c in result.checks}


# -- the course's numbers -------------------------------------------------------------------------------------

def test_truths_reproduce_the_lecture_numbers():
    seeds = Seeds(hidden=False)
    simple = simple_graph_truth(EXERCISES["graphs.simple_graph"].cases(seeds)[0])
    assert [float(simple[k][0]) for k in ("dx", "dy", "dz")] == [-4.0, -4.0, 3.0]
    neuron = neuron_truth(EXERCISES["graphs.sigmoid_neuron"].cases(seeds)[0])
    assert neuron["dw"][0].tolist() == pytest.approx([-0.20, -0.39, 0.20], abs=0.005)
    assert neuron["dx"][0].tolist() == pytest.approx([0.39, -0.59], abs=0.005)
    matvec = matvec_truth(EXERCISES["graphs.l2_of_matvec"].cases(seeds)[0])
    assert matvec["dx"].tolist() == pytest.approx([-0.112, 0.636])
    assert matvec["dW"].flatten().tolist() == pytest.approx([0.088, 0.176, 0.104, 0.208])


# -- reference and template ------------------------------------------------------------------------------------

def test_reference_gets_full_marks_on_public_and_hidden_cases(runner, root):
    result = grade(root / "reference", list(EXERCISES.values()), hidden=True, runner=runner)
    assert result.score == pytest.approx(result.max_score, abs=1e-5) and result.max_score == 12
    for ex in result.exercises:
        for check in ex.checks:
            assert check.passed, (ex.id, check)
            assert any(case.hidden for case in check.cases)


def test_template_scores_zero_and_says_not_implemented(runner, root):
    result = grade(root / "student_template", list(EXERCISES.values()), hidden=False, runner=runner)
    assert result.score == 0
    assert {c.verdict for ex in result.exercises for c in ex.checks} == {NOT_IMPLEMENTED}


# -- each catalogued mistake -------------------------------------------------------------------------------------

MISTAKES = [
    ("sign", "graphs.simple_graph", ("dq, dz = mul.backward(1.0)", "dq, dz = mul.backward(-1.0)"), "dz"),
    ("transposed", "graphs.l2_of_matvec", ("dW = torch.outer(dq, x)", "dW = torch.outer(x, dq)"), "dW"),
    ("transposed", "graphs.l2_of_matvec", ("dx = W.T @ dq", "dx = W @ dq if W.shape[0] == W.shape[1] else W.T @ dq"),
     "dx"),
    ("missing_branch", "graphs.l2_of_matvec", ("dq = 2.0 * q", "dq = q"), "dx"),
    ("scale", "graphs.l2_of_matvec", ("dq = 2.0 * q", "dq = 3.0 * q"), "dW"),
    ("shape", "graphs.l2_of_matvec", ("dx = W.T @ dq", "dx = (W.T @ dq).reshape(-1, 1)"), "dx"),
    ("max_tie", "graphs.MaxGate", ("""        if self.x >= self.y:
            return dout, 0.0
        return 0.0, dout""", """        return (dout if self.x >= self.y else 0.0), (dout if self.y >= self.x else 0.0)"""), "tie"),
    ("max_route", "graphs.MaxGate", ("if self.x >= self.y:", "if self.x <= self.y:"), "dx"),
    ("not_switched", "graphs.MultiplyGate", ("dx = self.y * dout", "dx = self.x * dout"), "dx"),
    ("no_upstream", "graphs.AddGate", ("return dout, dout", "return 1.0, 1.0"), "dy"),
    ("sigmoid_derivative", "graphs.SigmoidGate", ("return (1.0 - self.s) * self.s * dout", "return self.s * dout"),
     "dx"),
    ("sigmoid_derivative", "graphs.sigmoid_neuron", ("dz = sig.backward(1.0)", "dz = f"), "dw"),
    ("gate_wrong", "graphs.sigmoid_neuron", ("return dout, dout", "return 1.0, 1.0"), "dx"),  # a gate's bug
    ("upstream_dropped", "graphs.sigmoid_neuron", ("ddot, dw2 = add1.backward(dz)", "ddot, dw2 = add1.backward(1.0)"),
     "dx"),
    ("upstream_dropped", "graphs.simple_graph", ("dx, dy = add.backward(dq)", "dx, dy = add.backward(1.0)"), "dx"),
    ("sigmoid_derivative", "graphs.SigmoidGate", ("return (1.0 - self.s) * self.s * dout",
                                                  "return (1.0 + self.s) * self.s * dout"), "dx"),
    ("not_switched", "graphs.simple_graph", ("dq, dz = mul.backward(1.0)", "dq, dz = z, z"), "dz"),
]


@pytest.mark.parametrize("mistake, exercise_id, edit, check", MISTAKES,
                         ids=[f"{m[0]}-{m[1].split('.')[1]}-{m[3]}" for m in MISTAKES])
def test_each_mistake_is_caught_and_named(runner, tmp_path, reference, mistake, exercise_id, edit, check):
    result = graded(runner, variant(tmp_path, reference, edit), exercise_id)
    found = checks(result)[check]
    assert not found.passed and found.points < found.max_points
    assert found.mistake == mistake, (found.mistake, found.hint, found.message)
    assert found.hint
    assert result.score < result.max_score


# -- each function on its own: a wrong gate costs the gate, not the functions that use it rightly -----------------

WRONG_GATES = {
    "MultiplyGate": ("        dx = self.y * dout\n        dy = self.x * dout\n",
                                  "        dx = self.x * dout\n        dy = self.y * dout\n"),
    "SigmoidGate": ("return (1.0 - self.s) * self.s * dout", "return (1.0 + self.s) * self.s * dout"),
    "AddGate": ("return dout, dout", "return 0.5 * dout, 0.5 * dout"),
}


@pytest.mark.parametrize("gate", list(WRONG_GATES))
def test_a_wrong_gate_costs_its_own_exercise_only(runner, tmp_path, reference, gate):
    """The not-switched mul, the sigmoid's (1 + s) * s, an add that halves: each costs its gate's exercise, and
    simple_graph / sigmoid_neuron, which wire that gate rightly, keep their points."""
    sub = variant(tmp_path, reference, WRONG_GATES[gate])
    result = grade(sub, list(EXERCISES.values()), hidden=False, runner=runner)
    by_id = {ex.id: ex for ex in result.exercises}
    assert by_id[f"graphs.{gate}"].score < by_id[f"graphs.{gate}"].max_score
    for ex_id in ("graphs.simple_graph", "graphs.sigmoid_neuron", "graphs.l2_of_matvec"):
        ex = by_id[ex_id]
        assert ex.score == pytest.approx(ex.max_score, abs=1e-5), (ex_id, [(c.name, c.verdict, c.message) for c in ex.checks])
        for c in ex.checks:
            if not c.passed:  # wrong against PyTorch, correct on its own: it says what it depends on
                assert c.local_verdict in PASSING and f"depends on {gate}, which is wrong" in c.message, c.message
                assert c.mistake == "gate_wrong" and gate in c.hint
    assert result.score == pytest.approx(result.max_score - by_id[f"graphs.{gate}"].max_score
                                         + by_id[f"graphs.{gate}"].score, abs=1e-5)


def test_wrong_wiring_with_right_gates_costs_the_function(runner, tmp_path, reference):
    sub = variant(tmp_path, reference, ("dw0, dx0 = mul0.backward(da)", "dw0, dx0 = mul0.backward(1.0)"))
    result = grade(sub, [EXERCISES["graphs.MultiplyGate"], EXERCISES["graphs.sigmoid_neuron"]], hidden=False,
                   runner=runner)
    gates, neuron = result.exercises
    assert gates.score == gates.max_score
    found = checks(neuron)
    assert neuron.score < neuron.max_score
    assert found["dw"].local_verdict == "wrong" and found["dw"].mistake == "upstream_dropped"
    assert "mul0.backward" in found["dw"].hint


def test_a_gate_that_ignores_dout_earns_no_wiring_credit_where_the_wiring_cannot_show(runner, tmp_path, reference):
    """mul returning its local gradient whatever dout is: the wiring into it cannot be seen (every dout gives
    the same), so dx of the neuron, made only by the mul gates, earns no local credit (a constant upstream)."""
    sub = variant(tmp_path, reference, ("        dx = self.y * dout\n        dy = self.x * dout\n",
                                        "        dx = self.y\n        dy = self.x\n"))
    found = checks(graded(runner, sub, "graphs.sigmoid_neuron"))
    assert found["dx"].local_verdict == "wrong" and found["dx"].points == 0
    assert found["dw"].local_verdict in PASSING  # dw2 comes from the add gate, fed by the sigmoid: informative


def test_max_tie_keeps_the_non_tie_credit(runner, tmp_path, reference):
    sub = variant(tmp_path, reference, ("""        if self.x >= self.y:
            return dout, 0.0
        return 0.0, dout""", """        return (dout if self.x >= self.y else 0.0), (dout if self.y >= self.x else 0.0)"""))
    result = checks(graded(runner, sub, "graphs.MaxGate"))
    assert result["dx"].passed and result["dy"].passed and result["tie"].mistake == "max_tie"


def test_wrong_shape_values_are_named_even_when_right(runner, tmp_path, reference):
    # (2, 1) for (2,): a trailing size-1 dimension is wrong (a leading one passes with a note, DESIGN 6)
    sub = variant(tmp_path, reference, ("dx = W.T @ dq", "dx = (W.T @ dq)[:, None]"))
    found = checks(graded(runner, sub, "graphs.l2_of_matvec"))["dx"]
    assert found.mistake == "shape" and "values are right" in found.hint


def test_unknown_wrong_answer_gets_a_generic_diagnosis(runner, tmp_path, reference):
    sub = variant(tmp_path, reference, ("dw1, dx1 = mul1.backward(db)", "dw1, dx1 = mul1.backward(db)\n    dw2 = 0.0"))
    found = checks(graded(runner, sub, "graphs.sigmoid_neuron"))
    assert found["dx"].passed and not found["dw"].passed and found["dw"].mistake is None
    assert "all 0" in found["dw"].hint


# -- correct answers written differently ----------------------------------------------------------------------

CORRECT_VARIANTS = [
    ("graphs.SigmoidGate", [  # via exp(-x) instead of (1 - s) * s
        ("        self.s = 1.0 / (1.0 + math.exp(-x))", "        self.x = x\n        self.s = 1.0 / (1.0 + math.exp(-x))"),
        ("return (1.0 - self.s) * self.s * dout", "e = math.exp(-self.x)\n        return e / (1.0 + e) ** 2 * dout")]),
    ("graphs.MaxGate", [("if self.x >= self.y:", "if self.x > self.y:")]),  # ties routed to y
    ("graphs.MaxGate", [("""        if self.x >= self.y:
            return dout, 0.0
        return 0.0, dout""", """        if self.x == self.y:
            return 0.5 * dout, 0.5 * dout  # PyTorch's convention
        return (dout, 0) if self.x > self.y else (0, dout)""")]),
    ("graphs.l2_of_matvec", [  # broadcasting instead of outer, a sum instead of W.T @
        ("dW = torch.outer(dq, x)", "dW = dq[:, None] * x[None, :]"),
        ("dx = W.T @ dq", "dx = (W * dq[:, None]).sum(0)")]),
    ("graphs.l2_of_matvec", [("dx = W.T @ dq", "dx = 2 * W.T @ (W @ x)"),
                             ("dW = torch.outer(dq, x)", "dW = torch.einsum('i,j->ij', dq, x).numpy()")]),
    ("graphs.sigmoid_neuron", [  # the lecture's inline code, without gates, returning tuples of numpy floats
        ("""    dz = sig.backward(1.0)
    ddot, dw2 = add1.backward(dz)
    da, db = add0.backward(ddot)
    dw0, dx0 = mul0.backward(da)
    dw1, dx1 = mul1.backward(db)""", """    import numpy as np
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    s = 1.0 / (1 + math.exp(-dot))
    ddot = (1 - s) * s
    dw0, dw1, dw2 = np.float64(x[0] * ddot), np.float64(x[1] * ddot), np.float64(1.0 * ddot)
    dx0, dx1 = w[0] * ddot, w[1] * ddot"""),
        ("return f, ([dw0, dw1, dw2], [dx0, dx1])", "return f, (np.array([dw0, dw1, dw2]), (dx0, dx1))")]),
    ("graphs.simple_graph", [("""    dq, dz = mul.backward(1.0)  # df/df = 1 starts the backward pass
    dx, dy = add.backward(dq)""", """    dx, dy, dz = torch.tensor(z), torch.tensor(z), torch.tensor(x + y)""")]),
]


@pytest.mark.parametrize("exercise_id, edits", CORRECT_VARIANTS,
                         ids=[f"{v[0].split('.')[1]}-{i}" for i, v in enumerate(CORRECT_VARIANTS)])
def test_correct_variants_pass(runner, tmp_path, reference, exercise_id, edits):
    result = graded(runner, variant(tmp_path, reference, *edits), exercise_id, hidden=True)
    assert result.score == pytest.approx(result.max_score, abs=1e-5), [(c.name, c.verdict, c.message) for c in result.checks]
    assert all(c.verdict in PASSING for c in result.checks)


def test_tie_rule_is_reported(runner, tmp_path, reference):
    sub = variant(tmp_path, reference, ("if self.x >= self.y:", "if self.x > self.y:"))
    ex = EXERCISES["graphs.MaxGate"]
    case = ex.cases(Seeds(hidden=False))[0]
    from autograder.sandbox import Runner  # noqa: F401  (the session runner runs it)
    run = runner.run(sub, ex.module, ex.driver, case.inputs, time_limit=10, memory_mb=2048)
    comparison = ex.judge(case, run.outputs, ex.truth(case))[-1]
    assert comparison.name == "tie" and comparison.passed and "to y" in comparison.message


def test_autograd_in_l2_is_refused_but_gate_backward_is_not_autograd(runner, tmp_path, reference):
    sub = variant(tmp_path, reference, ("""    dq = 2.0 * q                  # one q from each branch of q * q
    dW = torch.outer(dq, x)       # dW[i, j] = dq[i] * x[j]
    dx = W.T @ dq                 # dx[j] = sum_i W[i, j] * dq[i]""", """    W, x = W.clone().requires_grad_(), x.clone().requires_grad_()
    ((W @ x) ** 2).sum().backward()
    dW, dx = W.grad, x.grad"""))
    result = graded(runner, sub, "graphs.l2_of_matvec")
    assert result.score == 0 and {c.mistake for c in result.checks} == {"autograd_used"}
    simple = graded(runner, sub, "graphs.simple_graph")  # `mul.backward(...)` is the student's own gate
    assert simple.score == pytest.approx(simple.max_score, abs=1e-5)


@pytest.mark.parametrize("exercise_id, edit, message", [
    ("graphs.simple_graph", ("return f, (dx, dy, dz)", "return f, dx, dy, dz"), "must return (f, (dx, dy, dz))"),
    ("graphs.MultiplyGate", ("return dx, dy\n", "return dx\n"), "must return a pair (dx, dy)"),
    ("graphs.sigmoid_neuron", ("return f, ([dw0, dw1, dw2], [dx0, dx1])", "return f, ([dw0, dw1], [dx0, dx1])"),
     "dw must be a list of 3 gradients"),
    ("graphs.l2_of_matvec", ("return f, (dW, dx)", "return dW, dx"), "must return (f, (dW, dx))"),
])
def test_a_malformed_return_is_named(runner, tmp_path, reference, exercise_id, edit, message):
    result = graded(runner, variant(tmp_path, reference, edit), exercise_id)
    assert result.score == 0 and {c.verdict for c in result.checks} == {"error"}
    assert message in result.message, result.message
