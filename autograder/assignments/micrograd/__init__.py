"""micrograd assignment: the scalar autograd engine (`micrograd/engine.py`) and its `nn` (`micrograd/nn.py`).

Layout (the process boundary): `student_side.py` holds the drivers (run in the student's process, torch
blocked: no truth, tolerance or hint); the grader side is `cases.py` (the cases and their PyTorch truths),
`judges.py`, `mistakes.py` (the catalogue of known mistakes), `pictures.py` (what the HTML report draws:
the expression graphs) and this module (`EXERCISES`, each with its tolerance).

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

import functools

from autograder.core.exercise import DTYPE_DEFAULT, Exercise
# The grader side's names, re-exported: tests and tools reach them as `micrograd.<name>`.
from autograder.assignments.micrograd.cases import (BASE_OPS, BUILT_FROM, CHAIN_STEPS, LECTURE_XS, LECTURE_YS, NN_VARIANTS, SMALL_GRAPHS, alone_truth, deep_chain_cases,  # noqa: F401
                    deep_chain_truth, expression_cases, expression_truth, graph_cases, graph_truth, nn_cases,
                    nn_reference, nn_truth, ops_cases, ops_truth, probe_truth, random_program, torch_graphs, torch_op,
                    torch_program)
from autograder.assignments.micrograd.judges import (REUSE_PARTS, _failure, guarded, judge, judge_deep_chain,  # noqa: F401
                                                     judge_expression, judge_graphs, judge_nn, judge_ops, wrong_nodes)
from autograder.assignments.micrograd.mistakes import (DERIVATIVE, HINTS, MISTAKE_IDS, NN_MISTAKES, OP_MISTAKES, ENGINE_MISTAKES, depends_on, engine_mistake,  # noqa: F401
                       local_mistake, op_failure, probe_bad_ops, _catalogue, _engine_matcher, _usable)
from autograder.assignments.micrograd.student_side import ENGINE, NN, NN_CHECKS, OPS, PROBE_LOCAL, PROBE_VALUES, SHOWN, run_program  # noqa: F401

COURSE_POSITION = 1  # where the course takes it up: the order front ends list the assignments in

NO_TORCH = "the scalar engine is built from Python floats and `math`; PyTorch is only the grader's reference"

# -- the exercises ------------------------------------------------------------------------------------------

_DRIVERS = "autograder.assignments.micrograd.student_side"
# Every check compares float64 numbers with PyTorch's float64 truth: rounding only, at float64's default.
TOLERANCE = DTYPE_DEFAULT
_ENGINE = dict(module=ENGINE, blocked_imports=("torch",), blocked_why=NO_TORCH, time_limit=10.0, judge=judge,
               mistakes=ENGINE_MISTAKES, tolerance=TOLERANCE)


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
             title="a 4,000-node chain (a recursive topological sort hits the recursion limit)",
             driver=f"{_DRIVERS}:deep_chain_driver", truth=deep_chain_truth, judge=judge_deep_chain, time_limit=30.0),
    exercise("micrograd.nn", nn_cases, entry="MLP", points=4,
             title="nn: parameters, forward, gradients, one SGD step, zero_grad",
             driver=f"{_DRIVERS}:nn_driver", truth=nn_truth, files=("micrograd/engine.py", "micrograd/nn.py"),
             module=NN, judge=judge_nn, mistakes=NN_MISTAKES),
]
