"""micrograd_exercises (the micrograd lecture's exercise notebook): the lecture's solution pasted in scores
full marks on public and hidden cases, the untouched template is not_implemented, every catalogued mistake
is caught and named, and a right softmax on a wrong engine keeps its points."""
from __future__ import annotations

import textwrap

import pytest

from autograder.assignments import NAMES, exercises
from autograder.core.compare import NOT_IMPLEMENTED
from autograder.core.exercise import Seeds
from autograder.core.pipeline import grade
from autograder.core.result import PASSED_LOCALLY

EXERCISES = exercises("micrograd_exercises")

# The notebook's cells as a student fills them in the Colab (two-space indents, the notebook's own lines),
# each wrapped in the function the template declares around it.
LECTURE_SOLUTION = textwrap.dedent('''\
    import math
    from math import sin, cos

    def f(a, b, c):
      return -a**3 + sin(3*b) - 1.0/c + b**2.5 - a**0.5

    def gradf(a, b, c):
      df_da = -3*(a**2) - 0.5 * a**(-0.5)
      df_db = 2.5 * (b**1.5) + cos(3*b) * 3
      df_dc = - (-1) * c**-2
      return [df_da, df_db, df_dc]

    def numerical_grad(f, a, b, c):
      h = 0.000001
      numerical_grad = [0, 0, 0]
      numerical_grad[0] = (f(a + h, b, c) - f(a, b, c)) / h
      numerical_grad[1] = (f(a, b + h, c) - f(a, b, c)) / h
      numerical_grad[2] = (f(a, b, c + h) - f(a, b, c)) / h
      return numerical_grad

    def numerical_grad2(f, a, b, c, h):
      numerical_grad2 = [0, 0, 0]
      numerical_grad2[0] = (f(a + h, b, c) - f(a - h, b, c)) / (2*h)
      numerical_grad2[1] = (f(a, b + h, c) - f(a, b - h, c)) / (2*h)
      numerical_grad2[2] = (f(a, b, c + h) - f(a, b, c - h)) / (2*h)
      return numerical_grad2

    class Value:

      def __init__(self, data, _children=(), _op='', label=''):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op
        self.label = label

      def __repr__(self):
        return f"Value(data={self.data})"

      def __add__(self, other): # exactly as in the video
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')
        def _backward():
          self.grad += 1.0 * out.grad
          other.grad += 1.0 * out.grad
        out._backward = _backward
        return out

      def __radd__(self, other):
        return self + other

      def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')
        def _backward():
          self.grad += other.data * out.grad
          other.grad += self.data * out.grad
        out._backward = _backward
        return out

      def __rmul__(self, other):
        return self * other

      def __pow__(self, other):
        assert isinstance(other, (int, float)), "only supporting int/float powers for now"
        out = Value(self.data**other, (self,), f'**{other}')
        def _backward():
          self.grad += other * (self.data ** (other - 1)) * out.grad
        out._backward = _backward
        return out

      def __truediv__(self, other):
        return self * other**-1

      def __neg__(self):
        return self * -1

      def __sub__(self, other):
        return self + (-other)

      def exp(self):
        x = self.data
        out = Value(math.exp(x), (self, ), 'exp')
        def _backward():
          self.grad += out.data * out.grad
        out._backward = _backward
        return out

      def log(self):
        out = Value(math.log(self.data), (self, ), 'log')
        def _backward():
          self.grad += (1 / self.data) * out.grad
        out._backward = _backward
        return out

      def backward(self): # exactly as in video
        topo = []
        visited = set()
        def build_topo(v):
          if v not in visited:
            visited.add(v)
            for child in v._prev:
              build_topo(child)
            topo.append(v)
        build_topo(self)
        self.grad = 1.0
        for node in reversed(topo):
          node._backward()

    def softmax(logits):
      counts = [logit.exp() for logit in logits]
      denominator = sum(counts)
      out = [c / denominator for c in counts]
      return out

    def nll(probs, label):
      return -probs[label].log()
''')


def submit(tmp_path, source: str):
    (tmp_path / "micrograd_exercises.py").write_text(source)
    return tmp_path


def graded(runner, submission, hidden=False):
    seeds = Seeds(hidden=True, secret="test-secret") if hidden else None
    return {e.id.split(".", 1)[1]: e for e in grade(submission, EXERCISES, hidden=hidden, runner=runner,
                                                    seeds=seeds).exercises}


def by_name(ex):
    return {c.name: c for c in ex.checks}


def test_registered():
    assert "micrograd_exercises" in NAMES
    assert [e.entry for e in EXERCISES] == ["gradf", "numerical_grad", "numerical_grad2", "Value", "softmax", "nll"]


def test_lecture_solution_full_marks_public_and_hidden(runner, tmp_path):
    sub = submit(tmp_path, LECTURE_SOLUTION)
    for hidden in (False, True):
        result = graded(runner, sub, hidden=hidden)
        for name, ex in result.items():
            assert ex.score == ex.max_score, (name, hidden, [(c.name, c.verdict, c.message) for c in ex.checks])
        if hidden:  # hidden cases ran: every check has public and hidden cases
            assert all(any(v.hidden for v in c.cases) and any(not v.hidden for v in c.cases)
                       for ex in result.values() for c in ex.checks)


def test_reference_full_marks(runner, root, tmp_path):
    result = graded(runner, submit(tmp_path, (root / "reference" / "micrograd_exercises.py").read_text()))
    assert sum(e.score for e in result.values()) == sum(e.max_score for e in result.values()) == 15


def test_template_not_implemented(runner, root):
    result = graded(runner, root / "student_template")
    verdicts = {c.verdict for ex in result.values() for c in ex.checks}
    assert verdicts == {NOT_IMPLEMENTED}


# (exercise, edit of the lecture solution, the checks it must make wrong, the mistake id they must name)
MISTAKES = [
    ("gradf", ("cos(3*b) * 3", "cos(3*b)"), {"df_db"}, "chain_rule_sin3b"),
    ("gradf", ("- (-1) * c**-2", "-1 * c**-2"), {"df_dc"}, "reciprocal_sign"),
    ("numerical_grad", ("h = 0.000001", "h = 0.001"), {"df_da", "df_db"}, "step_too_large"),
    ("numerical_grad", ("h = 0.000001", "h = 1e-13"), {"df_da"}, "step_too_small"),
    ("numerical_grad", ("h = 0.000001", "h = 0.00003"), {"df_da"}, "step_too_large"),  # off the 1-2-5 grid
    ("numerical_grad", ("h = 0.000001", "h = 1.3e-12"), {"df_da"}, "step_too_small"),
    ("numerical_grad2", ("(f(a + h, b, c) - f(a - h, b, c)) / (2*h)", "(f(a + h, b, c) - f(a, b, c)) / h"),
     {"df_da"}, "forward_difference"),
    ("Value", ("      self.grad += out.data * out.grad\n", "      pass\n"), {"a.exp()"}, "no_backward"),
    ("Value", ("      self.grad += (1 / self.data) * out.grad\n", "      pass\n"), {"a.log()"},
     "no_backward"),
    ("Value", ("    return self * other**-1", "    return Value(self.data / other.data, (self, other), '/')"),
     {"a / b"}, "no_backward"),
    ("gradf", ("- 0.5 * a**(-0.5)", "- a**(-0.5)"), {"df_da"}, "power_rule"),
    ("numerical_grad2", ("/ (2*h)\n  numerical_grad2[1]", "/ h\n  numerical_grad2[1]"), {"df_da"},
     "central_missing_half"),
    ("numerical_grad2", ("def numerical_grad2(f, a, b, c, h):\n", "def numerical_grad2(f, a, b, c, h):\n  h = 1e-5\n"),
     {"df_da", "df_db"}, "ignores_h"),
    ("Value", ("      self.grad += out.data * out.grad\n", "      self.grad += out.data\n"), {"a.exp()"}, "no_upstream"),
    ("Value", ("      self.grad += (1 / self.data) * out.grad\n", "      self.grad += self.data * out.grad\n"),
     {"a.log()"}, "op_derivative"),
    ("Value", ("      self.grad += other * (self.data ** (other - 1)) * out.grad\n",
               "      self.grad += (self.data ** (other - 1)) * out.grad\n"), {"a ** k"}, "op_derivative"),
    ("softmax", ("out = [c / denominator for c in counts]", "out = counts"), {"probs", "dlogits"},
     "softmax_not_normalised"),
    ("nll", ("return -probs[label].log()", "return probs[label].log()"), {"loss", "dlogits"}, "nll_sign"),
]


@pytest.mark.parametrize("exercise,edit,wrong,mistake", MISTAKES,
                         ids=[f"{m[3]}-{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_mistake_caught_and_named(runner, tmp_path, exercise, edit, wrong, mistake):
    old, new = edit
    assert LECTURE_SOLUTION.count(old) == 1, old
    result = graded(runner, submit(tmp_path, LECTURE_SOLUTION.replace(old, new)))
    checks = by_name(result[exercise])
    for name in wrong:
        assert checks[name].verdict == "wrong", (name, checks[name].verdict, checks[name].message)
        assert checks[name].mistake == mistake, (name, checks[name].mistake, checks[name].hint)
        assert checks[name].hint
    assert result[exercise].score < result[exercise].max_score


def test_analytic_gradient_in_numerical_grad_is_caught(runner, tmp_path):
    source = LECTURE_SOLUTION.replace("""  h = 0.000001
  numerical_grad = [0, 0, 0]""", """  return gradf(a, b, c)
  h = 0.000001
  numerical_grad = [0, 0, 0]""")
    checks = by_name(graded(runner, submit(tmp_path, source))["numerical_grad"])
    assert {c.mistake for c in checks.values()} == {"not_numerical"}


def test_a_wrong_formula_is_not_blamed_on_the_step(runner, tmp_path):
    """f(a + h, ...) where f(a, b + h, c) belongs: wrong, and not named as a step size."""
    source = LECTURE_SOLUTION.replace("numerical_grad[1] = (f(a, b + h, c) - f(a, b, c)) / h",
                                      "numerical_grad[1] = (f(a + h, b, c) - f(a, b, c)) / h")
    check = by_name(graded(runner, submit(tmp_path, source))["numerical_grad"])["df_db"]
    assert check.verdict == "wrong" and check.mistake not in ("step_too_large", "step_too_small"), check.mistake


def test_right_softmax_on_wrong_engine_keeps_its_points(runner, tmp_path):
    """exp's backward wrong (self.data for out.data): the Value exercise loses a.exp(), softmax's code is right
    given that engine, and keeps its points (cascade-free)."""
    source = LECTURE_SOLUTION.replace("      self.grad += out.data * out.grad\n",
                                      "      self.grad += self.data * out.grad\n")
    result = graded(runner, submit(tmp_path, source))
    assert by_name(result["Value"])["a.exp()"].mistake == "op_derivative"
    dlogits = by_name(result["softmax"])["dlogits"]
    assert dlogits.verdict == "wrong" and dlogits.status == PASSED_LOCALLY, dlogits.message
    assert "depends on the Value operations" in dlogits.message
    assert result["softmax"].score == result["softmax"].max_score


def test_gradescope_package_grades_it(root, tmp_path):
    """`gradescope-package -a micrograd_exercises` builds a zip whose run_autograder grades the lecture's
    solution to full marks, hidden cases included."""
    import os
    import subprocess
    import sys

    from tests.test_gradescope import run_autograder
    package = tmp_path / "autograder.zip"
    env = {**os.environ, "AUTOGRADER_SECRET": "course-secret-7"}
    run = subprocess.run([sys.executable, "-m", "autograder", "gradescope-package", "-o", str(package), "-a",
                          "micrograd_exercises"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    data = run_autograder(package, tmp_path, {"micrograd_exercises.py": LECTURE_SOLUTION.encode()})
    # No top-level score while hidden tests are unpublished: Gradescope's total is the tests' sum.
    assert "score" not in data and round(sum(t["score"] for t in data["tests"]), 6) == 15
    assert any(t["visibility"] == "after_published" for t in data["tests"])  # hidden cases ran


def test_hidden_failures_say_only_their_kind(runner, tmp_path):
    """An exception whose text and class name carry the inputs: shown on public cases, withheld on hidden ones
    (the judge gets the student's process's description and passes on only the kind)."""
    source = LECTURE_SOLUTION.replace("def gradf(a, b, c):\n", "def gradf(a, b, c):\n"
                                      "  raise type(f'Leak{a}', (Exception,), {})(f'inputs {a} {b} {c}')\n")
    check = by_name(graded(runner, submit(tmp_path, source), hidden=True)["gradf"])["df_da"]
    assert check.verdict == "error" and check.case_label.startswith("public")
    assert "inputs 2.0 3.0 4.0" in check.message                  # the public case's own words
    gradf = next(e for e in EXERCISES if e.entry == "gradf")
    case = next(c for c in gradf.cases(Seeds(hidden=True, secret="s")) if c.hidden)
    leak = {"failure": "error", "message": "Leak1.5: inputs 1.5 2 3 (micrograd_exercises.py, line 7, in gradf)",
            "short": "Leak1.5 (micrograd_exercises.py, line 7, in gradf)"}
    for c in gradf.judge(case, {k: leak for k in ("df_da", "df_db", "df_dc")}, gradf.truth(case)):
        assert c.verdict == "error" and "Leak" not in c.message and "line" not in c.message, c.message
