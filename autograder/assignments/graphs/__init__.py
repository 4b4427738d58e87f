"""graphs assignment: backpropagation on computational graphs (CS231n lecture 4), graded against PyTorch.

Exercises (`graphs.<entry>`, the student's file `graphs.py`): the four gates (`AddGate`, `MultiplyGate`,
`MaxGate`, `SigmoidGate`), the worked examples `simple_graph` and `sigmoid_neuron`, and the vectorised
`l2_of_matvec`. Only gradients are graded: the forward passes are given in the template.

Each function is graded on its own. The worked examples use the student's gates: the driver notes the
gates they make and measures each gate's backward alone (`student_side._Recorder`), and where an answer is
wrong against PyTorch the judge asks whether the wiring is right given those gates ("correct; depends on
MultiplyGate, which is wrong"); hints that blame the wiring apply only when every gate is right.

The max gate on a tie. PyTorch's `torch.maximum` (and `Tensor.max`) splits the gradient evenly between
tied inputs (0.5 / 0.5). The course teaches "route it to one input" (either one: `x >= y` or `x > y`);
every convex split of dout between the two is a valid subgradient of max, and what matters for the
chain rule is that the two parts sum to dout. So: the ordinary MaxGate cases never contain a tie (the
inputs are at least 0.1 apart), and a dedicated `tie` check accepts all of dout to x, all to y, or
PyTorch's even split, and flags routing all of dout to *both* inputs (`max_tie`: the gradient doubles).

Layout (the process boundary): `student_side.py` runs in the student's process (drivers only); the grader
side is `cases.py` (cases and truths), `judges.py` (global and local verdicts), `mistakes.py` (the
catalogue), `pictures.py` (what the HTML report draws) and this file (the exercises, each id and tolerance
written once, here).
"""
from __future__ import annotations


import functools

from autograder.core.exercise import DTYPE_DEFAULT, Exercise, Tolerance
from autograder.assignments.graphs.cases import (gate_cases, gate_truth, matvec_cases, matvec_truth,  # noqa: F401
                                                 neuron_cases, neuron_truth, simple_graph_cases, simple_graph_truth)
from autograder.assignments.graphs.judges import judge_gate, judge_neuron, judge_simple
from autograder.assignments.graphs.mistakes import GATE_MISTAKES, MATVEC_MISTAKES, NEURON_MISTAKES, SIMPLE_MISTAKES

COURSE_POSITION = 2  # where the course takes it up: the order front ends list the assignments in

MODULE = "graphs"

# The scalar exercises get Python floats, but a student may pass them through a float32 tensor (torch's
# default dtype): that rounds at 6e-8 relative, which is not a mistake. Every catalogued mistake is off by
# far more than float32's tolerance (the smallest, a misrouted max or a missing (1 - s), by 10% or more).
SCALARS = Tolerance(rtol=1e-4, atol=1e-5)
# The vectorised example has float32 and float64 cases: each judged at its dtype's precision.
MATVEC = DTYPE_DEFAULT


def exercise(entry: str, cases, driver: str, **kwargs) -> Exercise:
    """The exercise `graphs.<entry>`: its id is made here once, and its case builder gets it from here (hidden
    seeds derive from it)."""
    exercise_id = f"{MODULE}.{entry}"
    return Exercise(id=exercise_id, module=MODULE, entry=entry, cases=functools.partial(cases, exercise_id=exercise_id),
                    driver=f"autograder.assignments.graphs.student_side:{driver}", forbid_autograd=True,
                    time_limit=10.0, **kwargs)


def gate_exercise(entry: str, title: str) -> Exercise:
    return exercise(entry, gate_cases(entry), "run_gate", points=1.0, truth=gate_truth, judge=judge_gate,
                    mistakes=GATE_MISTAKES[entry], title=title, tolerance=SCALARS)


EXERCISES = [
    gate_exercise("AddGate", "add gate: distributes"),
    gate_exercise("MultiplyGate", "multiply gate: switches"),
    gate_exercise("MaxGate", "max gate: routes (and ties)"),
    gate_exercise("SigmoidGate", "sigmoid gate"),
    exercise("simple_graph", simple_graph_cases, "run_simple_graph", points=2.0, truth=simple_graph_truth,
             judge=judge_simple, mistakes=SIMPLE_MISTAKES, title="f = (x + y) z", tolerance=SCALARS),
    exercise("sigmoid_neuron", neuron_cases, "run_sigmoid_neuron", points=3.0, truth=neuron_truth,
             judge=judge_neuron, mistakes=NEURON_MISTAKES, title="the 2-D sigmoid neuron", tolerance=SCALARS),
    exercise("l2_of_matvec", matvec_cases, "run_l2_of_matvec", points=3.0, truth=matvec_truth,
             mistakes=MATVEC_MISTAKES, title="f = ||W x||^2, vectorised", tolerance=MATVEC),
]
