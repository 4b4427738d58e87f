"""micrograd and its nn graded as real submissions are: whole engines written in different ways score full
marks, the published micrograd loses exactly what it lacks, one mistake costs exactly its own function, and
the same submission scores the same on every run.

Engines: the reference with one targeted edit (test_micrograd_grading.MISTAKE_EDITS); micrograd as
published (test_micrograd_grading.ORIGINAL_MICROGRAD without the methods Karpathy's repository does not
have); and independent correct engines (tests/real_engines.py, test_micrograd_grading.COMPOSITE_ENGINE).
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from autograder.assignments import graphs, micrograd
from autograder.core.compare import PASSING
from autograder.core.exercise import Seeds
from autograder.core.pipeline import grade
from tests.real_engines import CHILDREN_NOT_PREV, CREATION_ORDER, ITERATIVE_DFS, NN_OTHER_STYLE, RECURSIVE_BIG_STACK
from tests.test_micrograd_grading import COMPOSITE_ENGINE, MISTAKE_EDITS, ORIGINAL_MICROGRAD, make_submission, write_engine

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = {ex.id: ex for ex in micrograd.EXERCISES}
SHALLOW = [i for i in EXERCISES if i != "micrograd.deep_chain"]  # the 100,000-node chain costs ~2 s a case


def points(ex_id: str, check: str) -> Fraction:
    """A check's share of its exercise's points (checks weigh equally)."""
    ex = EXERCISES[ex_id]
    n = len(ex.truth(ex.cases(Seeds(hidden=False))[0]))
    return Fraction(ex.points) / n


def graded(runner, submission: Path, ids=SHALLOW):
    result = grade(submission, [EXERCISES[i] for i in ids], hidden=False, runner=runner)
    return result, {(ex.id, c.name): c for ex in result.exercises for c in ex.checks}


def lost(checks) -> dict[tuple[str, str], float]:
    return {key: c.max_points - c.points for key, c in checks.items() if c.points < c.max_points - 1e-9}


def karpathy_engine() -> str:
    """micrograd/engine.py as in Karpathy's repository: add, mul, pow, relu, backward with a recursive
    build_topo, and the derived ops; no exp, log, tanh or sigmoid."""
    source = ORIGINAL_MICROGRAD
    for method in ("tanh", "exp", "log", "sigmoid"):
        source, n = re.subn(rf"\n    def {method}\(self\):\n(?:        .*\n|\n(?=        ))*", "\n", source)
        assert n == 1, method
    assert "def tanh" not in source and "def exp" not in source and "def relu" in source
    return source


# -- the published micrograd loses exactly what it lacks -------------------------------------------------------

def test_karpathys_micrograd_loses_only_its_missing_ops_and_the_deep_chain(runner, tmp_path):
    sub = write_engine(tmp_path, karpathy_engine(), "karpathy")
    result, checks = graded(runner, sub, ids=list(EXERCISES))
    missing = {("micrograd.ops", shown) for shown in ("a.exp()", "a.log()", "a.tanh()", "a.sigmoid()")}
    # the deep chain is the assignment's requirement that a recursive topological sort cannot meet
    expected = missing | {("micrograd.deep_chain", "out, x.grad")}
    assert set(lost(checks)) == expected, lost(checks)
    assert result.score == pytest.approx(25 - 4 * 0.5 - 1)
    assert checks[("micrograd.deep_chain", "out, x.grad")].mistake == "recursion_limit"
    # what uses a missing op is wrong against PyTorch, and right on its own: it says so
    for key in (("micrograd.backward", "chain"), ("micrograd.reuse", "diamond"), ("micrograd.expressions", "leaf grads")):
        c = checks[key]
        assert c.verdict not in PASSING and c.local_verdict in PASSING, (key, c.verdict, c.message)
        assert "backward() is correct; depends on" in c.message and "which are missing" in c.message \
            or "which is missing" in c.message, c.message


# -- correct engines written differently score full marks ------------------------------------------------------

ENGINES = {"iterative DFS, list _prev": ITERATIVE_DFS, "creation order, BFS": CREATION_ORDER,
           "recursive build_topo in a big-stack thread": RECURSIVE_BIG_STACK, "Kahn's algorithm": COMPOSITE_ENGINE,
           "inputs in `children`, no _prev": CHILDREN_NOT_PREV}


@pytest.mark.parametrize("name", list(ENGINES))
def test_independent_correct_engines_score_full_marks(runner, tmp_path, name):
    sub = write_engine(tmp_path, ENGINES[name], "engine")
    ids = list(EXERCISES) if name == "recursive build_topo in a big-stack thread" else SHALLOW
    result, checks = graded(runner, sub, ids=ids)
    assert not lost(checks), {k: (c.verdict, c.message) for k, c in checks.items() if k in lost(checks)}
    assert result.score == result.max_score


def test_an_nn_written_differently_scores_full_marks(runner, tmp_path):
    sub = make_submission(tmp_path)
    (sub / "micrograd" / "nn.py").write_text(NN_OTHER_STYLE)
    result, checks = graded(runner, sub, ids=["micrograd.nn"])
    assert result.score == result.max_score, lost(checks)


# -- one mistake costs exactly its own function ---------------------------------------------------------------

# id -> (engine edits, nn edits, the checks that lose points: everything else keeps them)
OWN_COST = {
    # `=` for `+=` costs what it teaches (issue 17; the lecture's chapter "fixing a backprop bug when one node
    # is used multiple times"): the op itself, and the checks of a value used twice (micrograd.reuse, the
    # fan-out of micrograd.expressions) that the op makes wrong; not forgiven as a dependency's fault there.
    "overwrite_not_accumulate": (MISTAKE_EDITS["overwrite_not_accumulate"], [],
                                 {("micrograd.ops", "a + b"), ("micrograd.reuse", "a + a"),
                                  ("micrograd.reuse", "b + b (b = a + a)"), ("micrograd.expressions", "leaf grads"),
                                  ("micrograd.expressions", "node grads")}),
    # the lecture's own bug, on one side of __mul__ only
    "the lecture's `self.grad = other.data * out.grad`": (
        [("self.grad += other.data * out.grad", "self.grad = other.data * out.grad")], [],
        {("micrograd.ops", "a * b"), ("micrograd.reuse", "a*x + a*y"), ("micrograd.expressions", "leaf grads"),
         ("micrograd.expressions", "node grads")}),
    "mul forgets other.grad": ([("other.grad += self.data * out.grad", "pass")], [], {("micrograd.ops", "a * b")}),
    # out = Value(..., (self,), '*'): backward() cannot reach `other`'s own inputs through _prev
    "mul records one input": ([("out = Value(self.data * other.data, (self, other), '*')",
                                "out = Value(self.data * other.data, (self,), '*')")], [], {("micrograd.ops", "a * b")}),
    "forgot_chain_rule": (MISTAKE_EDITS["forgot_chain_rule"], [], {("micrograd.ops", "a * b")}),
    "wrong_local_derivative": (MISTAKE_EDITS["wrong_local_derivative"], [], {("micrograd.ops", "a ** k")}),
    "uses_input_not_output": (MISTAKE_EDITS["uses_input_not_output"], [], {("micrograd.ops", "a.tanh()")}),
    "overwrite_everywhere": (MISTAKE_EDITS["overwrite_everywhere"], [],
                             {("micrograd.ops", micrograd.SHOWN[op]) for op in micrograd.BASE_OPS}
                             | {("micrograd.reuse", part) for part in micrograd.REUSE_PARTS}
                             | {("micrograd.expressions", "leaf grads"), ("micrograd.expressions", "node grads")}),
    "parameters() without biases": ([], [("return self.w + [self.b]", "return self.w")],
                                    {("micrograd.nn", "parameters")}),
    # the lecture's Neuron is no mistake (issue 17): it costs nothing
    "tanh neuron (the video's)": ([], [("return act.relu() if self.nonlin else act", "return act.tanh()")], set()),
    "weights detached (wi.data * xi)": ([], [("wi * xi for wi, xi", "wi.data * xi for wi, xi")],
                                        {("micrograd.nn", "gradients")}),
    "zero_grad does nothing": ([], [("        for p in self.parameters():\n            p.grad = 0\n", "        pass\n")],
                               {("micrograd.nn", "zero_grad")}),
    # backward() visits in topological order, not its reverse: every check of backward() (nn's gradients,
    # right with the engine's own closures walked rightly, keep theirs). Here every parameter's gradient is 0,
    # so the SGD step, which changes nothing, proves nothing and earns nothing (no free answer for zeros).
    "topo_not_reversed": (MISTAKE_EDITS["topo_not_reversed"], [],
                          {("micrograd.backward", "seed"), ("micrograd.nn", "SGD step"),
                           ("micrograd.backward", "chain"), ("micrograd.reuse", "b + b (b = a + a)"),
                           ("micrograd.reuse", "diamond"), ("micrograd.reuse", "a*x + a*y"),
                           ("micrograd.reuse", "x*a + y*a"), ("micrograd.expressions", "leaf grads"),
                           ("micrograd.expressions", "node grads")}),
}


@pytest.mark.parametrize("name", list(OWN_COST))
def test_one_mistake_costs_exactly_its_own_function(runner, tmp_path, name):
    edits, nn_edits, costs = OWN_COST[name]
    sub = make_submission(tmp_path, edits, nn_edits)
    exercises = sorted({ex for ex, _ in costs} | {"micrograd.ops", "micrograd.backward", "micrograd.reuse",
                                                   "micrograd.expressions", "micrograd.nn"})
    result, checks = graded(runner, sub, ids=exercises)
    assert set(lost(checks)) == costs, {k: (checks[k].verdict, checks[k].message) for k in lost(checks)}
    for key in costs:
        assert checks[key].points == 0, (key, checks[key].points)
        if name.startswith(("overwrite", "the lecture's")):
            assert checks[key].mistake == "overwrite_not_accumulate", (key, checks[key].mistake)
    if name.startswith("weights detached"):
        assert checks[("micrograd.nn", "gradients")].mistake == "detached_parameter"
    expected_loss = sum(points(*key) for key in costs)
    assert result.score == pytest.approx(result.max_score - float(expected_loss), abs=1e-5)
    # the checks that are wrong against PyTorch but right on their own say what they depend on
    for key, c in checks.items():
        if not c.passed and key not in costs:
            assert c.local_verdict in PASSING and "depend" in c.message, (key, c.message)


def test_a_backward_that_never_seeds_earns_no_local_credit(runner, tmp_path):
    """Item 7: without the seed every gradient is 0; backward() on its own is wrong too, so no check of it
    keeps points by 'correct step, wrong upstream' (the 4 of 6 on expressions of before)."""
    sub = make_submission(tmp_path, MISTAKE_EDITS["seed_grad_missing"])
    result, checks = graded(runner, sub, ids=["micrograd.backward", "micrograd.expressions", "micrograd.nn"])
    by_ex = {ex.id: ex.score for ex in result.exercises}
    assert by_ex["micrograd.backward"] == 0 and by_ex["micrograd.expressions"] == 0
    sgd = checks[("micrograd.nn", "SGD step")]
    assert sgd.points == 0  # zero gradients: a step that changes nothing proves nothing
    assert checks[("micrograd.expressions", "leaf grads")].mistake == "seed_grad_missing"


# -- the same submission scores the same on every run ------------------------------------------------------------

GRADE_ONCE = """
import json, sys
from autograder.assignments import micrograd
from autograder.core.pipeline import grade
from autograder.sandbox import Runner
ids = sys.argv[2].split(",")
with Runner() as runner:
    runner.start()
    result = grade(sys.argv[1], [e for e in micrograd.EXERCISES if e.id in ids], hidden=False, runner=runner)
print(json.dumps([str(result.score)] + [[ex.id, c.name, c.verdict, c.local_verdict, str(c.points), c.maxdiff, c.message]
                                    for ex in result.exercises for c in ex.checks]))
"""


def test_the_classic_overwrite_scores_the_same_in_five_separate_runs(tmp_path):
    """`=` for `+=` makes a gradient depend on the order in which backward() visits a set of Values, which
    follows their memory addresses: it differed from run to run. Five separate processes, one result."""
    sub = make_submission(tmp_path, MISTAKE_EDITS["overwrite_everywhere"])
    ids = "micrograd.backward,micrograd.reuse,micrograd.expressions,micrograd.nn"
    runs = [subprocess.run([sys.executable, "-c", GRADE_ONCE, str(sub), ids], cwd=ROOT, capture_output=True,
                           text=True, timeout=240) for _ in range(5)]
    outputs = [r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-2000:] for r in runs]
    assert all(r.returncode == 0 for r in runs), outputs
    assert len(set(outputs)) == 1, "\n".join(outputs)
    assert Fraction(json.loads(outputs[0])[0]) > 0


# -- exercise ids are written once -------------------------------------------------------------------------------

@pytest.mark.parametrize("assignment", [micrograd, graphs], ids=["micrograd", "graphs"])
def test_exercise_ids_are_written_once_and_the_cases_take_them_from_the_exercise(assignment):
    seeds = Seeds(hidden=True, secret="ids")
    package = Path(assignment.__file__).parent
    # the grader's side (student_side.py names the student's modules, e.g. micrograd.nn, not exercises)
    source = "\n".join(p.read_text() for p in package.glob("*.py") if p.name != "student_side.py")
    for ex in assignment.EXERCISES:
        assert source.count(f'"{ex.id}"') <= 1, f"{ex.id} is written more than once in {package}"
        assert isinstance(ex.cases, functools.partial) and ex.cases.keywords == {"exercise_id": ex.id}
        # the hidden cases follow the id: built under another id they differ, the public ones do not
        renamed = ex.cases.func(seeds, exercise_id=ex.id + "_renamed")
        cases = ex.cases(seeds)
        assert [plain(c.inputs) for c in cases if not c.hidden] == [plain(c.inputs) for c in renamed if not c.hidden]
        assert [plain(c.inputs) for c in cases if c.hidden] != [plain(c.inputs) for c in renamed if c.hidden], ex.id


def plain(value):
    """Case inputs with tensors as lists, comparable with ==."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.tolist() if hasattr(value, "tolist") else value


# -- what the student's process sends is not trusted ---------------------------------------------------------------

MALFORMED = [None, 3, "x", [1, 2], {"failure": "error"}, {"seed": [None], "expression": "x"}, [[None]],
             [{"gate": "AddGate", "args": "x", "responses": [[1], None, 5]}]]


@pytest.mark.parametrize("exercise", [ex for ex in micrograd.EXERCISES + graphs.EXERCISES
                                      if ex.id != "micrograd.deep_chain"], ids=lambda ex: ex.id)
def test_malformed_parts_cost_the_local_verdicts_only(exercise):
    """A broken or hostile process can send anything in the parts the local judging reads (`_alone`,
    `_nodes`, `_cover`, `_gates`...): the judge never raises, and a right answer stays right."""
    case = exercise.cases(Seeds(hidden=False))[0]
    truth = exercise.truth(case)
    for junk in MALFORMED:
        parts = {"_alone": junk, "_nodes": junk, "_cover": junk, "_propagated": junk, "_gates": junk, "_probe": junk}
        wrong = exercise.judge(case, {**{name: junk for name in truth}, **parts}, truth)
        assert [c.name for c in wrong] == list(truth) and not any(c.local_verdict in PASSING for c in wrong)
        # (`_cover`, which parameter parameters() returns, is part of the answer of nn's `parameters`)
        parts.pop("_cover")
        right = exercise.judge(case, {**{name: value.tolist() for name, value in truth.items()}, **parts}, truth)
        assert all(c.passed for c in right), [(c.name, c.verdict, c.message) for c in right]


def test_the_deep_chain_keeps_its_point_when_only_an_op_is_wrong(runner, tmp_path):
    """mul without the chain rule's out.grad: the 100,000-node chain is wrong against PyTorch, backward() is
    right on a deep chain of given local derivatives: the point stays, and the report names `a * b`."""
    sub = make_submission(tmp_path, MISTAKE_EDITS["forgot_chain_rule"])
    result, checks = graded(runner, sub, ids=["micrograd.deep_chain"])
    c = checks[("micrograd.deep_chain", "out, x.grad")]
    assert c.verdict == "wrong" and c.local_verdict in PASSING and c.points == c.max_points
    assert "depends on `a * b`, which is wrong" in c.message


def test_parameters_without_biases_are_counted_in_the_students_terms(runner, tmp_path):
    """Issue 17: "41 expected, 32 returned: the biases (b) are missing", not a tensor diff of one element
    with a dtype note."""
    sub = make_submission(tmp_path, [], [("return self.w + [self.b]", "return self.w")])
    result, checks = graded(runner, sub, ids=["micrograd.nn"])
    c = checks[("micrograd.nn", "parameters")]
    assert c.mistake == "parameters_incomplete"
    assert "41 expected, 32 returned: the biases (b) are missing" in c.message, c.message
    assert "int64" not in c.message and "elements differ" not in c.message


def test_the_lectures_tanh_neuron_scores_full_marks(runner, tmp_path):
    """The micrograd lecture's Neuron (`out = act.tanh()`, every layer) is an MLP as right as the template's
    relu one: full marks, no `tanh_neuron` flag."""
    sub = make_submission(tmp_path, [], [("return act.relu() if self.nonlin else act", "return act.tanh()")])
    result, checks = graded(runner, sub, ids=["micrograd.nn"])
    assert result.score == result.max_score, {k: (c.verdict, c.message) for k, c in checks.items()}
    assert not any(c.mistake for c in checks.values())


def test_a_backward_in_the_wrong_order_is_blamed_on_backward_not_on_tanh(runner, tmp_path):
    """Issue 17: backward() visiting nodes breadth-first (no topological order) with the lecture's tanh
    Neuron: the wrong checks name backward() and `no_topological_order`; nothing blames tanh."""
    from tests.test_micrograd_grading import TOPO_BUILD_START
    bfs = [(TOPO_BUILD_START, "        self.grad = 1.0\n        queue, seen = [self], {self}\n"
            "        while queue:\n            v = queue.pop(0)\n            v._backward()\n"
            "            for c in v._prev:\n                if c not in seen:\n                    seen.add(c)\n"
            "                    queue.append(c)\n        return\n" + TOPO_BUILD_START)]
    sub = make_submission(tmp_path, bfs, [("return act.relu() if self.nonlin else act", "return act.tanh()")])
    result, checks = graded(runner, sub, ids=["micrograd.ops", "micrograd.reuse", "micrograd.expressions",
                                              "micrograd.nn"])
    wrong = {k: c for k, c in checks.items() if not c.passed}
    assert wrong and all("tanh" not in (c.mistake or "") and "uses_input" not in (c.mistake or "")
                         for c in wrong.values()), {k: c.mistake for k, c in wrong.items()}
    assert all(c.passed for (ex, _), c in checks.items() if ex == "micrograd.ops")
    assert checks[("micrograd.reuse", "diamond")].mistake == "no_topological_order"
    grads = checks[("micrograd.nn", "gradients")]
    assert grads.passed or "backward()" in grads.message, grads.message
