"""Why this number is wrong, element by element (worked.py): a catalogued mistake graded for real, and the
worked element checked against the tensors themselves (the arithmetic it prints evaluates to the value it
states, that value is the true gradient where the upstream is right, and "yours" is the student's)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from rich.console import Console

from autograder.assignments import exercises
from autograder.core.pipeline import grade
from autograder.frontends.render import render_exercise
from autograder.frontends.worked import RULES, worked_element

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "reference" / "backprop_ninja.py").read_text()


def _graded(tmp_path, entry, old, new, mistake=None):
    source = REFERENCE.replace(old, new, 1)
    assert source != REFERENCE, f"the reference no longer has {old!r}: update the mutation"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text(source)
    exs = [e for e in exercises("backprop_ninja") if e.entry == entry]
    return sub, exs, source


def _evaluate(numeric: str) -> float:
    """The printed arithmetic, evaluated (it is plain Python for the elementwise steps)."""
    assert re.fullmatch(r"[0-9eE+\-*/(). ]+", numeric), numeric
    return eval(numeric)  # noqa: S307 (digits and operators only, checked above)


def test_the_bessel_mistake_worked_through(tmp_path, runner):
    """1/n for 1/(n-1) in dbndiff2: the element shows Bessel's n-1, the student's upstream dbnvar, the right
    product (the true gradient, since dbnvar is right) and the student's n-1/n of it."""
    sub, exs, _ = _graded(tmp_path, "manual_backward", "dbndiff2 = (1.0 / (n - 1)) *", "dbndiff2 = (1.0 / n) *")
    kept: dict = {}
    result = grade(sub, exs, hidden=False, runner=runner, keep_outputs=kept)
    ex = result.exercises[0]
    assert ex.first_wrong_step == "bndiff2"
    check = next(c for c in ex.checks if c.name == "bndiff2")
    assert check.mistake == "bessel"
    worked = worked_element(ex, kept[ex.id])
    assert worked is not None and worked.name == "bndiff2"
    case, outputs, truth = next(k for k in kept[ex.id] if k[0].label in worked.case)
    n = case.info["n"]
    i, j = worked.index
    assert "1/(n-1) * dbnvar[0, %d]" % j in worked.work.symbolic and f"n = {n}" in worked.work.symbolic
    assert worked.work.value == pytest.approx(float(truth["bndiff2"][i, j]), rel=1e-5)
    assert _evaluate(worked.work.numeric) == pytest.approx(worked.work.value, rel=1e-3)
    assert worked.yours == float(outputs["bndiff2"][i, j])
    assert worked.yours == pytest.approx(worked.work.value * (n - 1) / n, rel=1e-4)
    # as the terminal shows it: under the table, in the lecture's form
    console = Console(width=100, record=True, color_system=None)
    render_exercise(ex, console, kept[ex.id])
    text = console.export_text()
    assert f"dbndiff2[{i}, {j}] = 1/(n-1) * dbnvar[0, {j}]" in text and "yours: " in text
    assert text.index("worked element") > text.index("first wrong step")


def test_the_worked_element_uses_the_students_own_upstream(tmp_path, runner):
    """A wrong dh fed into a right dhpreact: exercise 1's first wrong step is h, worked with the student's
    own dlogits; dhpreact (right given dh) gets no worked element of its own."""
    sub, exs, _ = _graded(tmp_path, "manual_backward", "dh = dlogits @ W2.T", "dh = dlogits @ W2.T * 2")
    kept: dict = {}
    ex = grade(sub, exs, hidden=False, runner=runner, keep_outputs=kept).exercises[0]
    assert ex.first_wrong_step == "h"
    worked = worked_element(ex, kept[ex.id])
    assert worked.name == "h" and "your own dlogits" in worked.upstream
    assert "Σ_c dlogits[" in worked.work.symbolic and "(64 terms)" not in worked.work.numeric
    assert "(27 terms)" in worked.work.numeric  # a row of dlogits times a row of W2: 27 terms, 3 shown
    assert worked.yours == pytest.approx(2 * worked.work.value, rel=1e-4)


@pytest.mark.parametrize("entry,old,new,name,factor", [
    ("cross_entropy_backward", "    dlogits /= n\n", "    dlogits /= -n\n", "logits", -1.0),
    ("tanh_backward", "    dhpreact = (1.0 - h**2) * dh\n    ### END SOLUTION\n    return dhpreact",
     "    dhpreact = -(1.0 - h**2) * dh\n    ### END SOLUTION\n    return dhpreact", "hpreact", -1.0),
])
def test_one_expression_exercises(tmp_path, runner, entry, old, new, name, factor):
    sub, exs, _ = _graded(tmp_path, entry, old, new)
    kept: dict = {}
    ex = grade(sub, exs, hidden=False, runner=runner, keep_outputs=kept).exercises[0]
    assert ex.checks[0].verdict == "wrong" and ex.checks[0].mistake == "sign"
    worked = worked_element(ex, kept[ex.id])
    assert worked.name == name
    case, outputs, truth = kept[ex.id][0]
    assert worked.work.value == pytest.approx(float(truth[name][worked.index]), rel=1e-4, abs=1e-9)
    assert _evaluate(worked.work.numeric) == pytest.approx(worked.work.value, rel=1e-3, abs=1e-9)
    assert worked.yours == pytest.approx(factor * worked.work.value, rel=1e-4, abs=1e-9)


def test_every_exercise1_rule_is_the_true_gradient():
    """Each of the 26 rules, fed autograd's own upstream gradients, gives autograd's gradient at an element."""
    from types import SimpleNamespace

    from autograder.assignments.backprop_ninja.cases import model_cases
    from autograder.core.exercise import Seeds
    case = model_cases(Seeds(hidden=False), "backprop_ninja.manual_backward")[1]
    fwd = case.info["forward"]
    k = SimpleNamespace(n=fwd.k.n, Xb=fwd.k.Xb, Yb=fwd.k.Yb)
    g = torch.Generator().manual_seed(0)
    assert set(RULES) == set(fwd.grads)
    for name, rule in RULES.items():
        true = fwd.grads[name]
        for _ in range(3):
            idx = tuple(int(torch.randint(0, d, (1,), generator=g)) for d in true.shape)
            work = rule(fwd.values, fwd.grads, k, idx)
            assert work.value == pytest.approx(float(true[idx]), rel=1e-3, abs=1e-6), (name, idx, work)


def test_no_worked_element_without_a_wrong_public_case(runner):
    kept: dict = {}
    exs = [e for e in exercises("backprop_ninja") if e.entry == "tanh_backward"]
    ex = grade(ROOT / "reference", exs, hidden=False, runner=runner, keep_outputs=kept).exercises[0]
    assert worked_element(ex, kept[ex.id]) is None and worked_element(ex, []) is None


@pytest.mark.parametrize("old,new,gate,name,words", [
    ("        dx = self.y * dout", "        dx = -self.y * dout", "MultiplyGate", "x", "mul switches"),
    ("        return (1.0 - self.s) * self.s * dout", "        return self.s * dout", "SigmoidGate", "x", "sigmoid(x"),
])
def test_a_cs231n_gate_worked_through(tmp_path, runner, old, new, gate, name, words):
    source = (ROOT / "reference" / "graphs.py").read_text()
    assert old in source, f"reference/graphs.py has no {old!r}: update the mutation"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "graphs.py").write_text(source.replace(old, new, 1))
    kept: dict = {}
    exs = [e for e in exercises("graphs") if e.id == f"graphs.{gate}"]
    ex = grade(sub, exs, hidden=False, runner=runner, keep_outputs=kept).exercises[0]
    worked = worked_element(ex, kept[ex.id])
    assert worked is not None and worked.name == name and words in worked.work.symbolic
    case, outputs, truth = kept[ex.id][0]
    (i,) = worked.index
    assert worked.work.value == pytest.approx(float(truth["d" + name][i]), rel=1e-9)
    assert _evaluate(worked.work.numeric) == pytest.approx(worked.work.value, rel=1e-3, abs=1e-9)
    assert worked.yours == float(outputs["d" + name][i]) != pytest.approx(worked.work.value)
