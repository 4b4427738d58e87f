"""Grading the micrograd assignment end to end: every catalogued mistake is caught and named, correct
engines written differently get full marks, and hostile or broken code costs only what it breaks.

The engines are the reference with one targeted edit (a known mistake, or hostile code), and engines
written from scratch in another style (micrograd as published; composite ops with Kahn's algorithm).
"""
from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest

from autograder.assignments import micrograd
from autograder.core.compare import ERROR, NOT_IMPLEMENTED, PASSING, TIMEOUT, WRONG
from autograder.core.pipeline import grade

REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "micrograd"

# Each backward body of the reference, as the edits below address them.
ADD_BACKWARD = "            self.grad += out.grad\n            other.grad += out.grad\n"
TOPO_BACKWARD = "        self.grad = 1.0\n        for v in reversed(topo):\n            v._backward()\n"
TOPO_BUILD_START = "        topo = []\n"

# id -> (description, [(old, new), ...]) applied to reference/micrograd/engine.py, each `old` exactly once.
MISTAKE_EDITS = {
    "overwrite_not_accumulate": [(ADD_BACKWARD, "            self.grad = out.grad\n            other.grad = out.grad\n")],
    "overwrite_everywhere": [(".grad += ", ".grad = ")],  # every op (replace all)
    "wrong_local_derivative": [("local = other * self.data**(other - 1)", "local = other * self.data**other")],
    "forgot_chain_rule": [("self.grad += other.data * out.grad\n            other.grad += self.data * out.grad",
                           "self.grad += other.data\n            other.grad += self.data")],
    "uses_input_not_output": [("self.grad += (1 - t**2) * out.grad", "self.grad += (1 - self.data**2) * out.grad")],
    "uses_input_exp": [("self.grad += out.data * out.grad", "self.grad += self.data * out.grad")],
    "seed_grad_missing": [("        self.grad = 1.0\n", "")],
    "topo_not_reversed": [("for v in reversed(topo):", "for v in topo:")],
    # no order at all: push the gradient down the graph as nodes are popped (a node with two users
    # passes its gradient on before the second user has added to it)
    "no_topological_order": [(TOPO_BUILD_START, "        self.grad = 1.0\n        stack = [self]\n"
                                                 "        while stack:\n            v = stack.pop()\n"
                                                 "            v._backward()\n            stack.extend(v._prev)\n"
                                                 "        return\n" + TOPO_BUILD_START)],
    # micrograd's own recursive build_topo: right, until the graph is deeper than the recursion limit
    "recursion_limit": [(TOPO_BUILD_START, """\
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
        for v in reversed(topo):
            v._backward()
        return
""")],
}


def make_submission(tmp: Path, edits=(), nn_edits=(), name: str = "sub") -> Path:
    """A copy of reference/micrograd under tmp/name with the edits applied (each `old` must be present;
    an edit of `.grad += ` replaces every occurrence, the others exactly one)."""
    root = tmp / name
    shutil.copytree(REFERENCE, root / "micrograd", ignore=shutil.ignore_patterns("__pycache__"))
    for filename, changes in (("engine.py", edits), ("nn.py", nn_edits)):
        path = root / "micrograd" / filename
        source = path.read_text()
        for old, new in changes:
            count = source.count(old)
            assert count == 1 or (old == ".grad += " and count > 1), f"{old!r} occurs {count} times in {filename}"
            source = source.replace(old, new)
        path.write_text(source)
    return root


def write_engine(tmp: Path, source: str, name: str) -> Path:
    """A submission whose engine.py is `source`, with the reference nn.py."""
    root = tmp / name
    (root / "micrograd").mkdir(parents=True)
    (root / "micrograd" / "__init__.py").write_text("")
    (root / "micrograd" / "engine.py").write_text(textwrap.dedent(source))
    shutil.copy(REFERENCE / "nn.py", root / "micrograd" / "nn.py")
    return root


# micrograd's engine.py as published (recursive topological sort), with the lecture's tanh (via exp),
# exp, and log/sigmoid in the same style.
ORIGINAL_MICROGRAD = '''
import math

class Value:
    """ stores a single scalar value and its gradient """

    def __init__(self, data, _children=(), _op=''):
        self.data = data
        self.grad = 0
        # internal variables used for autograd graph construction
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op # the op that produced this node, for graphviz / debugging / etc

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward

        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward

        return out

    def __pow__(self, other):
        assert isinstance(other, (int, float)), "only supporting int/float powers for now"
        out = Value(self.data**other, (self,), f'**{other}')

        def _backward():
            self.grad += (other * self.data**(other-1)) * out.grad
        out._backward = _backward

        return out

    def relu(self):
        out = Value(0 if self.data < 0 else self.data, (self,), 'ReLU')

        def _backward():
            self.grad += (out.data > 0) * out.grad
        out._backward = _backward

        return out

    def tanh(self):
        x = self.data
        t = (math.exp(2*x) - 1)/(math.exp(2*x) + 1)
        out = Value(t, (self, ), 'tanh')

        def _backward():
            self.grad += (1 - t**2) * out.grad
        out._backward = _backward

        return out

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

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        out = Value(s, (self, ), 'sigmoid')

        def _backward():
            self.grad += s * (1 - s) * out.grad
        out._backward = _backward

        return out

    def backward(self):

        # topological order all of the children in the graph
        topo = []
        visited = set()
        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)
        build_topo(self)

        # go one variable at a time and apply the chain rule to get its gradient
        self.grad = 1
        for v in reversed(topo):
            v._backward()

    def __neg__(self): # -self
        return self * -1

    def __radd__(self, other): # other + self
        return self + other

    def __sub__(self, other): # self - other
        return self + (-other)

    def __rsub__(self, other): # other - self
        return other + (-self)

    def __rmul__(self, other): # other * self
        return self * other

    def __truediv__(self, other): # self / other
        return self * other**-1

    def __rtruediv__(self, other): # other / self
        return other * self**-1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"
'''

# A different engine that is also right: tanh built from exp nodes, sigmoid from tanh, subtraction and
# division with backward closures of their own, gradients recomputed from the input (math.exp, math.tanh),
# and Kahn's algorithm (counting each node's users) instead of a depth-first topological sort.
COMPOSITE_ENGINE = '''
import math
from collections import defaultdict, deque


class Value:
    def __init__(self, data, _children=(), _op='', label=''):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label

    @staticmethod
    def _lift(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), '+')
        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = self._lift(other)
        out = Value(self.data - other.data, (self, other), '-')
        def _backward():
            self.grad += out.grad
            other.grad -= out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), '*')
        def _backward():
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data
        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = self._lift(other)
        out = Value(self.data / other.data, (self, other), '/')
        def _backward():
            self.grad += out.grad / other.data
            other.grad -= out.grad * self.data / other.data ** 2
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = Value(self.data ** k, (self,), '**')
        def _backward():
            self.grad += out.grad * k * self.data ** (k - 1)
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), 'exp')
        def _backward():
            self.grad += out.grad * math.exp(self.data)
        out._backward = _backward
        return out

    def log(self):
        out = Value(math.log(self.data), (self,), 'log')
        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self):
        e = (self * 2).exp()
        return (e - 1) / (e + 1)

    def sigmoid(self):
        return (self * 0.5).tanh() * 0.5 + 0.5

    def relu(self):
        out = Value(max(self.data, 0.0), (self,), 'relu')
        def _backward():
            self.grad += out.grad if self.data > 0 else 0.0
        out._backward = _backward
        return out

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def backward(self):
        users = defaultdict(int)       # how many nodes use each node
        seen, todo = {id(self)}, [self]
        while todo:
            v = todo.pop()
            for c in v._prev:
                users[id(c)] += 1
                if id(c) not in seen:
                    seen.add(id(c))
                    todo.append(c)
        self.grad = 1.0
        ready = deque([self])           # a node is ready once every user has pushed its gradient
        while ready:
            v = ready.popleft()
            v._backward()
            for c in set(v._prev):
                users[id(c)] -= v._prev.count(c)
                if users[id(c)] == 0:
                    ready.append(c)
'''


# -- helpers -------------------------------------------------------------------------------------------------

EXERCISES = {ex.id: ex for ex in micrograd.EXERCISES}
SHALLOW = [i for i in EXERCISES if i != "micrograd.deep_chain"]  # the 100,000-node chain costs ~2 s a case


def grade_checks(runner, submission: Path, ids=SHALLOW, hidden: bool = False, time_limit: float | None = None):
    """{exercise id: {check name: CheckResult}} and the GradeResult."""
    exs = [EXERCISES[i] for i in ids]
    if time_limit is not None:
        exs = [dataclasses.replace(ex, time_limit=time_limit) for ex in exs]
    result = grade(submission, exs, hidden=hidden, runner=runner)
    return {ex.id: {c.name: c for c in ex.checks} for ex in result.exercises}, result


def assert_all_pass(checks: dict, ids=None):
    for ex_id, by_name in checks.items():
        if ids is None or ex_id in ids:
            for name, c in by_name.items():
                assert c.verdict in PASSING and c.points == c.max_points, (ex_id, name, c.verdict, c.message, c.hint)


# -- reference and template ------------------------------------------------------------------------------------

def test_reference_full_marks_on_public_and_hidden_cases(runner, root):
    checks, result = grade_checks(runner, root / "reference", ids=list(EXERCISES), hidden=True)
    assert result.score == result.max_score == 25
    assert_all_pass(checks)
    # the hidden cases ran too, and the expressions graded more than one graph
    assert any(cv.hidden for cv in checks["micrograd.expressions"]["leaf grads"].cases)


def test_untouched_template_scores_zero_with_not_implemented_everywhere(runner, root):
    checks, result = grade_checks(runner, root / "student_template", ids=list(EXERCISES))
    assert result.score == 0 and result.max_score == 25
    for ex_id, by_name in checks.items():
        for name, c in by_name.items():
            assert c.verdict == NOT_IMPLEMENTED, (ex_id, name, c.verdict, c.message)


# -- every mistake is caught and named ----------------------------------------------------------------------

def only_wrong(checks, expected: dict[tuple[str, str], str], mistake_ids=None):
    """The listed (exercise, check) are wrong with the given mistake id."""
    for (ex_id, name), mistake in expected.items():
        c = checks[ex_id][name]
        assert c.verdict == WRONG, (ex_id, name, c.verdict, c.message)
        assert c.mistake == mistake, (ex_id, name, c.mistake, c.hint)
        assert c.hint.startswith(micrograd.HINTS[mistake]), c.hint


def test_overwrite_in_one_op_is_named_on_that_op_and_on_reuse(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["overwrite_not_accumulate"])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.reuse", "micrograd.expressions"])
    only_wrong(checks, {("micrograd.ops", "a + b"): "overwrite_not_accumulate",
                        ("micrograd.reuse", "a + a"): "overwrite_not_accumulate",
                        ("micrograd.reuse", "b + b (b = a + a)"): "overwrite_not_accumulate",
                        ("micrograd.expressions", "leaf grads"): "overwrite_not_accumulate"})
    # the ops that do accumulate are right: one mistake does not zero the others
    for name in ("a * b", "a ** k", "a.exp()", "a.log()", "a.tanh()", "a.relu()", "a.sigmoid()"):
        assert checks["micrograd.ops"][name].passed, name
    # a - b is built from +: named with what it is built from
    assert checks["micrograd.ops"]["a - b"].mistake == "overwrite_not_accumulate"
    assert "built from add" in checks["micrograd.ops"]["a - b"].hint


def test_overwrite_everywhere_caught_by_a_value_used_twice(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["overwrite_everywhere"])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.reuse", "micrograd.nn"])
    only_wrong(checks, {("micrograd.reuse", "a * a"): "overwrite_not_accumulate",
                        ("micrograd.reuse", "a + a"): "overwrite_not_accumulate",
                        ("micrograd.nn", "gradients"): "overwrite_not_accumulate"})


def test_wrong_local_derivative_of_pow(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["wrong_local_derivative"])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.reuse"])
    only_wrong(checks, {("micrograd.ops", "a ** k"): "wrong_local_derivative",
                        ("micrograd.ops", "a / b"): "wrong_local_derivative",
                        ("micrograd.ops", "c / a"): "wrong_local_derivative"})
    assert "k * a.data**(k-1)" in checks["micrograd.ops"]["a ** k"].hint
    assert checks["micrograd.ops"]["a * b"].passed and checks["micrograd.ops"]["a - b"].passed
    assert_all_pass(checks, ids=["micrograd.reuse"])  # no pow in these graphs


def test_forgotten_chain_rule_factor_is_a_wrong_local_derivative(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["forgot_chain_rule"])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.backward"])
    only_wrong(checks, {("micrograd.ops", "a * b"): "wrong_local_derivative",
                        ("micrograd.backward", "chain"): "wrong_local_derivative"})
    assert "out.grad" in checks["micrograd.ops"]["a * b"].hint


@pytest.mark.parametrize("edit, op", [("uses_input_not_output", "a.tanh()"), ("uses_input_exp", "a.exp()")])
def test_backward_from_the_input_instead_of_the_output(runner, tmp_path, edit, op):
    sub = make_submission(tmp_path, MISTAKE_EDITS[edit])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.backward"])
    only_wrong(checks, {("micrograd.ops", op): "uses_input_not_output",
                        ("micrograd.backward", "chain"): "uses_input_not_output"})
    assert sum(not c.passed for c in checks["micrograd.ops"].values()) == 1


def test_expressions_judge_backward_on_its_own_and_name_the_wrong_op(runner, tmp_path):
    """tanh's backward is wrong: the graphs with a tanh are wrong against PyTorch, but backward() is right on
    them on its own (the same graph with given local derivatives): the check keeps its points and names the
    op it depends on. The public graph without tanh is simply right."""
    sub = make_submission(tmp_path, MISTAKE_EDITS["uses_input_not_output"])
    checks, result = grade_checks(runner, sub, ids=["micrograd.expressions"])
    node, leaf = checks["micrograd.expressions"]["node grads"], checks["micrograd.expressions"]["leaf grads"]
    for c in (node, leaf):
        assert c.verdict == WRONG and c.local_verdict in PASSING and c.points == c.max_points
        assert "backward() is correct; depends on `a.tanh()`, which is wrong" in c.message, c.message
    assert [cv.verdict in PASSING for cv in node.cases] == [True, False, False]
    assert result.exercises[0].score == result.exercises[0].max_score


def test_seed_grad_missing(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["seed_grad_missing"])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.backward", "micrograd.expressions"])
    only_wrong(checks, {("micrograd.backward", "seed"): "seed_grad_missing",
                        ("micrograd.backward", "chain"): "seed_grad_missing",
                        ("micrograd.expressions", "leaf grads"): "seed_grad_missing"})
    assert_all_pass(checks, ids=["micrograd.ops"])  # every op's own backward is right


@pytest.mark.parametrize("edit", ["no_topological_order", "topo_not_reversed"])
def test_wrong_visiting_order(runner, tmp_path, edit):
    sub = make_submission(tmp_path, MISTAKE_EDITS[edit])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.backward", "micrograd.reuse",
                                               "micrograd.expressions"])
    only_wrong(checks, {("micrograd.reuse", "diamond"): "no_topological_order",
                        ("micrograd.expressions", "leaf grads"): "no_topological_order"})
    assert_all_pass(checks, ids=["micrograd.ops"])
    if edit == "topo_not_reversed":  # even a chain needs the reverse order
        assert checks["micrograd.backward"]["chain"].mistake == "no_topological_order"
    else:  # pushing gradients down without an order is right on a tree and on a leaf used twice
        assert checks["micrograd.backward"]["chain"].passed and checks["micrograd.reuse"]["a + a"].passed


def test_recursive_topological_sort_fails_only_the_deep_chain(runner, tmp_path):
    sub = make_submission(tmp_path, MISTAKE_EDITS["recursion_limit"])
    checks, result = grade_checks(runner, sub, ids=["micrograd.backward", "micrograd.reuse", "micrograd.deep_chain"])
    c = checks["micrograd.deep_chain"]["out, x.grad"]
    assert c.verdict == ERROR and c.mistake == "recursion_limit", (c.verdict, c.mistake, c.message)
    assert "RecursionError" in c.message and "micrograd/engine.py, line" in c.message
    assert c.hint == micrograd.HINTS["recursion_limit"]
    assert_all_pass(checks, ids=["micrograd.backward", "micrograd.reuse"])
    assert result.score == result.max_score - EXERCISES["micrograd.deep_chain"].points


def test_a_wrong_answer_outside_the_catalogue_gets_a_generic_diagnosis(runner, tmp_path):
    # a - b computed as b - a: every op's backward is right, so no catalogued mistake applies
    sub = make_submission(tmp_path, [("        return self + (-other)\n", "        return other + (-self)\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops"])
    c = checks["micrograd.ops"]["a - b"]
    assert c.verdict == WRONG and c.mistake not in micrograd.HINTS
    assert "elements wrong" in c.hint and "got" in c.hint  # where, how large, and (public) the values
    assert sum(not c.passed for c in checks["micrograd.ops"].values()) == 1


# -- correct engines written differently ------------------------------------------------------------------

def test_published_micrograd_engine_is_right_except_on_the_deep_chain(runner, tmp_path):
    sub = write_engine(tmp_path, ORIGINAL_MICROGRAD, "original")
    checks, result = grade_checks(runner, sub, ids=list(EXERCISES), hidden=False)
    assert_all_pass(checks, ids=SHALLOW)
    assert checks["micrograd.deep_chain"]["out, x.grad"].mistake == "recursion_limit"
    assert result.score == result.max_score - EXERCISES["micrograd.deep_chain"].points


def test_composite_engine_with_kahns_algorithm_gets_full_marks(runner, tmp_path):
    sub = write_engine(tmp_path, COMPOSITE_ENGINE, "composite")
    checks, result = grade_checks(runner, sub, ids=list(EXERCISES), hidden=False)
    assert_all_pass(checks)
    assert result.score == result.max_score


# -- broken and hostile code costs only what it breaks -------------------------------------------------------

def test_syntax_error_in_nn_costs_only_the_nn_exercise(runner, tmp_path):
    sub = make_submission(tmp_path, nn_edits=[("    def __call__(self, x):\n        for layer",
                                               "    def __call__(self, x)\n        for layer")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.reuse", "micrograd.nn"])
    assert_all_pass(checks, ids=["micrograd.reuse"])
    for c in checks["micrograd.nn"].values():
        assert c.verdict == ERROR and "SyntaxError" in c.message and "micrograd/nn.py, line" in c.message
        assert "\n" not in c.message


def test_syntax_error_in_engine_names_file_line_and_caret(runner, tmp_path):
    """Found by compiling in the grader before any process starts: the line, a caret under it, the file."""
    sub = make_submission(tmp_path, [("    def exp(self):\n", "    def exp(self)\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.backward"])
    for c in checks["micrograd.backward"].values():
        assert c.verdict == ERROR and "SyntaxError" in c.message and "micrograd/engine.py, line" in c.message
        lines = c.message.splitlines()
        assert lines[0].strip() == "def exp(self)" and lines[1].strip() == "^", c.message


def test_endless_loop_in_one_backward_costs_that_op_only(runner, tmp_path):
    sub = make_submission(tmp_path, [("            self.grad += out.grad / self.data\n",
                                      "            while True:\n                pass\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.nn"])
    c = checks["micrograd.ops"]["a.log()"]
    assert c.verdict == TIMEOUT and "did not finish" in c.message
    assert sum(not c.passed for c in checks["micrograd.ops"].values()) == 1
    assert_all_pass(checks, ids=["micrograd.nn"])


def test_endless_loop_in_backward_times_out_the_case_not_the_grader(runner, tmp_path):
    sub = make_submission(tmp_path, [(TOPO_BACKWARD, "        while True:\n            pass\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.backward", "micrograd.ops"], time_limit=3.0)
    for c in checks["micrograd.backward"].values():
        assert c.verdict in (TIMEOUT, ERROR) and "within" in c.message, (c.verdict, c.message)
    assert_all_pass(checks, ids=["micrograd.ops"])  # the ops are judged with the grader's own order


def test_sys_exit_in_one_backward_costs_that_op_only(runner, tmp_path):
    sub = make_submission(tmp_path, [("            self.grad += out.data * out.grad\n",
                                      "            import sys; sys.exit(3)\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops", "micrograd.nn"])
    c = checks["micrograd.ops"]["a.exp()"]
    assert c.verdict == ERROR and "sys.exit(3)" in c.message and "micrograd/engine.py, line" in c.message
    assert sum(not c.passed for c in checks["micrograd.ops"].values()) == 1
    assert_all_pass(checks, ids=["micrograd.nn"])


def test_import_torch_in_the_engine_is_refused_with_file_and_line(runner, tmp_path):
    sub = make_submission(tmp_path, [("import math\n", "import math\nimport torch\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.backward", "micrograd.nn"])
    for ex in checks.values():
        for c in ex.values():
            assert c.verdict == ERROR and "import torch is not allowed" in c.message, c.message
            assert "micrograd/engine.py, line 9" in c.message and "\n" not in c.message


def test_import_torch_inside_one_op_costs_that_op_only(runner, tmp_path):
    sub = make_submission(tmp_path, [("    def sigmoid(self):\n", "    def sigmoid(self):\n        import torch\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops"])
    c = checks["micrograd.ops"]["a.sigmoid()"]
    assert c.verdict == ERROR and "import torch is not allowed" in c.message and "in sigmoid" in c.message
    assert sum(not c.passed for c in checks["micrograd.ops"].values()) == 1


def test_a_value_where_a_float_belongs_is_named(runner, tmp_path):
    sub = make_submission(tmp_path, [("self.grad += other.data * out.grad", "self.grad += other * out.grad")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops"])
    c = checks["micrograd.ops"]["a * b"]
    assert c.verdict == WRONG and "is a Value, not a number" in c.message


def test_endless_loop_in_an_operator_costs_its_own_checks_not_the_whole_exercise(runner, tmp_path):
    """Where a Value keeps its inputs is found by building `a + b` (then `a * b`); an `__add__` that never
    returns costs what uses `+`, guarded like every part, and `a * b` is still judged (with its `_prev`)."""
    sub = make_submission(tmp_path, [("        other = other if isinstance(other, Value) else Value(other)\n"
                                      "        out = Value(self.data + other.data, (self, other), '+')\n",
                                      "        while True:\n            pass\n")])
    checks, _ = grade_checks(runner, sub, ids=["micrograd.ops"])
    ops = checks["micrograd.ops"]
    assert ops["a + b"].verdict == TIMEOUT
    assert ops["a * b"].passed and ops["a.tanh()"].passed
