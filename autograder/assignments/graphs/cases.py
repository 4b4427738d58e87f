"""graphs, grader side: each exercise's cases (public and hidden, built from seeds in the grader's process)
and truths (PyTorch autograd, float64). A case builder gets its exercise's id from the Exercise
(`cases(seeds, exercise_id)`): the hidden seeds derive from it."""
from __future__ import annotations

import torch

from autograder.core.exercise import Case, Seeds
from autograder.core.truth import backward
from autograder.assignments.graphs.student_side import GATE_ARITY, _t

PER_CASE = 8            # scalar inputs per gate case: one fork runs eight forward/backward pairs
LECTURE_NEURON = ([2.0, -3.0, -3.0], [-1.0, -2.0])
LECTURE_SIMPLE = (-2.0, 5.0, -4.0)
# The lecture's vectorised example: q = W x = [0.22, 0.26], f = 0.116, dx = [-0.112, 0.636].
LECTURE_MATVEC = ([[0.1, 0.5], [-0.3, 0.8]], [0.2, 0.4])


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _floats(g: torch.Generator, n: int, scale: float = 2.0) -> list[float]:
    return [round(v, 6) for v in (torch.randn(n, generator=g, dtype=torch.float64) * scale).tolist()]


def _all_seeds(seeds: Seeds, exercise_id: str, public: int, hidden: int) -> list[tuple[str, bool, int]]:
    out = [(f"public-{i}", False, s) for i, s in enumerate(seeds.public(public))]
    out += [(f"hidden-{i}", True, s) for i, s in enumerate(seeds.hidden_seeds(exercise_id, hidden))]
    return out


def gate_cases(entry: str):
    def cases(seeds: Seeds, exercise_id: str) -> list[Case]:
        out = []
        for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
            g = _rng(seed)
            x, y, dout = _floats(g, PER_CASE), _floats(g, PER_CASE), _floats(g, PER_CASE, 1.5)
            if entry == "MaxGate":  # never a tie here, not even a near one: ties have their own check
                y = [b if abs(a - b) >= 0.1 else a + (0.1 + abs(b - a)) * (1 if b >= a else -1) for a, b in zip(x, y)]
            inputs = {"x": x, "dout": dout}
            if GATE_ARITY[entry] == 2:
                inputs["y"] = y
            if entry == "MaxGate":
                inputs["tie"] = _floats(g, PER_CASE)
                inputs["tie_dout"] = [d if abs(d) > 0.05 else 1.0 for d in _floats(g, PER_CASE, 1.5)]
            out.append(Case(case_id, hidden, {"gate": entry, **inputs}, info={"seed": seed},
                            label=f"{PER_CASE} random inputs"))
        return out
    return cases


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def gate_truth(case: Case) -> dict:
    """PyTorch autograd on the same gate, elementwise over the case's inputs (float64)."""
    name = case.inputs["gate"]
    x = _t(case.inputs["x"]).requires_grad_()
    dout = _t(case.inputs["dout"])
    if name == "SigmoidGate":
        backward(torch.sigmoid(x), dout)
        return {"dx": x.grad}
    y = _t(case.inputs["y"]).requires_grad_()
    out = {"AddGate": torch.add, "MultiplyGate": torch.mul, "MaxGate": torch.maximum}[name](x, y)
    backward(out, dout)
    truth = {"dx": x.grad, "dy": y.grad}
    if name == "MaxGate":
        a = _t(case.inputs["tie"]).requires_grad_()
        b = _t(case.inputs["tie"]).requires_grad_()  # equal values, two inputs: PyTorch splits dout 0.5 / 0.5
        backward(torch.maximum(a, b), _t(case.inputs["tie_dout"]))
        truth["tie"] = torch.stack([a.grad, b.grad], 1)
    return truth


def simple_graph_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
        g = _rng(seed)
        xs, ys, zs = _floats(g, PER_CASE), _floats(g, PER_CASE), _floats(g, PER_CASE)
        if seed == 0:  # the lecture's point first: its numbers are the ones on the slide
            xs[0], ys[0], zs[0] = LECTURE_SIMPLE
        out.append(Case(case_id, hidden, {"x": xs, "y": ys, "z": zs}, info={"seed": seed},
                        label="the lecture's point and random inputs" if seed == 0 else f"{PER_CASE} random inputs"))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def simple_graph_truth(case: Case) -> dict:
    x, y, z = (_t(case.inputs[k]).requires_grad_() for k in ("x", "y", "z"))
    ((x + y) * z).sum().backward()
    return {"dx": x.grad, "dy": y.grad, "dz": z.grad}

def neuron_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 2, 3):
        g = _rng(seed)
        ws = [_floats(g, 3) for _ in range(PER_CASE)]
        xs = [_floats(g, 2) for _ in range(PER_CASE)]
        if seed == 0:
            ws[0], xs[0] = list(LECTURE_NEURON[0]), list(LECTURE_NEURON[1])
        out.append(Case(case_id, hidden, {"w": ws, "x": xs}, info={"seed": seed},
                        label="the lecture's neuron and random inputs" if seed == 0 else f"{PER_CASE} random inputs"))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def neuron_truth(case: Case) -> dict:
    w, x = _t(case.inputs["w"]).requires_grad_(), _t(case.inputs["x"]).requires_grad_()
    torch.sigmoid(w[:, 0] * x[:, 0] + w[:, 1] * x[:, 1] + w[:, 2]).sum().backward()
    return {"dw": w.grad, "dx": x.grad}

# -- the vectorised example -----------------------------------------------------------------------------------

def matvec_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in _all_seeds(seeds, exercise_id, 3, 4):
        g = _rng(seed)
        if seed == 0:
            W, x, dtype = _t(LECTURE_MATVEC[0]), _t(LECTURE_MATVEC[1]), torch.float64
        else:
            # a square W on public seed 2 so that a transposed dW has the right shape and wrong values
            m = 4 if seed == 2 else int(torch.randint(2, 9, (1,), generator=g))
            n = 4 if seed == 2 else int(torch.randint(2, 9, (1,), generator=g))
            if n == m and seed != 2:
                n += 1
            dtype = torch.float32 if seed % 2 else torch.float64
            W = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
            x = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
        label = "the lecture's example" if seed == 0 else f"{str(dtype).replace('torch.', '')}, W {tuple(W.shape)}"
        out.append(Case(case_id, hidden, {"W": W, "x": x}, info={"seed": seed}, label=label))
    return out


@torch.enable_grad()  # the truth is autograd's, whatever grad mode the caller is in
def matvec_truth(case: Case) -> dict:
    W, x = case.inputs["W"].clone().requires_grad_(), case.inputs["x"].clone().requires_grad_()
    ((W @ x) ** 2).sum().backward()
    return {"dW": W.grad, "dx": x.grad}
