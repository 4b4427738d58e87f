"""micrograd_exercises: cases (public and hidden) and their truths, in the grader's process.

The truth is PyTorch: autograd's gradient of f for `gradf` and `numerical_grad`; for `numerical_grad2`,
which asks for the symmetric difference quotient at a GIVEN step h, that quotient computed in float64
(the value the formula gives, so a one-sided quotient at the same h is caught however good it looks).
Points are drawn from a domain where f is defined and smooth (a, b > 0 for the square roots, c away from
0), and where a forward difference with the notebook's step (h = 1e-6) is within the notebook's own
tolerance (1e-5) of the truth.
"""
from __future__ import annotations

import torch

from autograder.core.exercise import Case, Seeds
from autograder.assignments.micrograd_exercises.student_side import OPS

LECTURE_POINT = [2.0, 3.0, 4.0]
LECTURE_LOGITS, LECTURE_LABEL = [0.0, 3.0, -2.0, 1.0], 3
POINTS_PER_CASE = 4


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> list[float]:
    return [round(lo + (hi - lo) * v, 4) for v in torch.rand(n, generator=g, dtype=torch.float64).tolist()]


def all_seeds(seeds: Seeds, exercise_id: str, public: int, hidden: int) -> list[tuple[str, bool, int]]:
    out = [(f"public-{i}", False, s) for i, s in enumerate(seeds.public(public))]
    out += [(f"hidden-{i}", True, s) for i, s in enumerate(seeds.hidden_seeds(exercise_id, hidden))]
    return out


def _points(g: torch.Generator, n: int) -> list[list[float]]:
    a, b, c = _uniform(g, n, 0.5, 3.0), _uniform(g, n, 0.5, 3.0), _uniform(g, n, 1.0, 4.0)
    return [list(p) for p in zip(a, b, c)]


def torch_f(name: str, a, b, c):
    if name == "lecture":
        return -a**3 + torch.sin(3*b) - 1.0/c + b**2.5 - a**0.5
    return a * b * c + torch.exp(0.5 * a) - torch.log(b) + c**3 / 3.0


def point_cases(with_f: bool, with_h: bool):
    """Cases of points (a, b, c); public case 0 starts with the notebook's (2, 3, 4) and the lecture's f.
    With `with_f`, public case 2 and some hidden cases use a second function; with `with_h`, the step h
    differs between cases (the notebook's question is how the error depends on it)."""
    def cases(seeds: Seeds, exercise_id: str) -> list[Case]:
        out = []
        steps = [0.01, 0.001, 0.005, 0.002]
        for n, (case_id, hidden, seed) in enumerate(all_seeds(seeds, exercise_id, 3 if with_f else 2, 3)):
            g = _rng(seed)
            points = _points(g, POINTS_PER_CASE)
            f = "other" if with_f and (seed == 2 or (hidden and n % 2)) else "lecture"
            if seed == 0:
                points[0] = list(LECTURE_POINT)
            inputs = {"points": points}
            label = "the notebook's point and random points" if seed == 0 else f"{POINTS_PER_CASE} random points"
            if with_f:
                inputs["f"] = f
                label += ", a second function f" if f == "other" else ""
            if with_h:
                inputs["h"] = steps[seed % len(steps)] if not hidden else steps[int(torch.randint(0, 4, (1,), generator=g))]
                label += f", h = {inputs['h']:g}"
            out.append(Case(case_id, hidden, inputs, info={"seed": seed}, label=label))
        return out
    return cases


def _abc(case: Case):
    t = torch.tensor(case.inputs["points"], dtype=torch.float64)
    return t[:, 0], t[:, 1], t[:, 2]


@torch.enable_grad()
def gradient_truth(case: Case) -> dict:
    """Autograd's df/da, df/db, df/dc at every point of the case."""
    a, b, c = (x.clone().requires_grad_() for x in _abc(case))
    torch_f(case.inputs.get("f", "lecture"), a, b, c).sum().backward()
    return {"df_da": a.grad, "df_db": b.grad, "df_dc": c.grad}


def quotients(case: Case, h: float, kind: str) -> dict:
    """Difference quotients at step h, in float64: central, forward, backward, or central without the 2."""
    a, b, c = _abc(case)
    f = lambda *x: torch_f(case.inputs.get("f", "lecture"), *x)  # noqa: E731
    out = {}
    for name, i in (("df_da", 0), ("df_db", 1), ("df_dc", 2)):
        plus = [a, b, c]
        minus = [a, b, c]
        plus[i], minus[i] = plus[i] + h, minus[i] - h
        if kind == "central":
            out[name] = (f(*plus) - f(*minus)) / (2 * h)
        elif kind == "central_no_half":
            out[name] = (f(*plus) - f(*minus)) / h
        elif kind == "forward":
            out[name] = (f(*plus) - f(a, b, c)) / h
        else:
            out[name] = (f(a, b, c) - f(*minus)) / h
    return out


def central_truth(case: Case) -> dict:
    return quotients(case, case.inputs["h"], "central")


# -- section 2 ------------------------------------------------------------------------------------------

OP_DOMAIN = {"a.log()": (0.2, 4.0), "a ** k": (0.3, 3.0), "a / b": (0.3, 3.0)}
POWERS = (2, 3, -1, 0.5, -2, 1.5)


def ops_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case_id, hidden, seed in all_seeds(seeds, exercise_id, 2, 3):
        g = _rng(seed)
        ops = {}
        for name, (_, kinds, _) in OPS.items():
            lo, hi = OP_DOMAIN.get(name, (-2.0, 2.0))
            points = []
            for _ in range(POINTS_PER_CASE):
                point = []
                for kind in kinds:
                    if kind == "c" and name == "a ** k":
                        point.append(POWERS[int(torch.randint(0, len(POWERS), (1,), generator=g))])
                    elif kind == "c":
                        point.append(_uniform(g, 1, -2.0, 2.0)[0])
                    else:
                        point.append(_uniform(g, 1, lo, hi)[0])
                points.append(point)
            ops[name] = points
        # upstream gradients other than 1, so that a backward that ignores out.grad shows
        upstream = [round(v if abs(v) > 0.2 else 1.3, 4) for v in _uniform(g, POINTS_PER_CASE, -2.0, 2.0)]
        out.append(Case(case_id, hidden, {"ops": ops, "upstream": upstream}, info={"seed": seed},
                        label=f"{POINTS_PER_CASE} random inputs per operation"))
    return out


def torch_op(name: str, point: list, upstream: float) -> list[float]:
    _, kinds, op = OPS[name]
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x, k in zip(point, kinds) if k == "n"]
    it = iter(leaves)
    args = [next(it) if k == "n" else x for x, k in zip(point, kinds)]
    with torch.enable_grad():
        out = op(*args)
        out.backward(torch.tensor(upstream, dtype=torch.float64))
    return [float(out.detach())] + [float(v.grad) for v in leaves]


def ops_truth(case: Case) -> dict:
    return {name: torch.tensor([torch_op(name, p, u) for p, u in zip(points, case.inputs["upstream"])],
                               dtype=torch.float64)
            for name, points in case.inputs["ops"].items()}


def logits_cases(with_label: bool):
    def cases(seeds: Seeds, exercise_id: str) -> list[Case]:
        out = []
        for case_id, hidden, seed in all_seeds(seeds, exercise_id, 2, 3):
            g = _rng(seed)
            n = 4 if seed == 0 else int(torch.randint(3, 8, (1,), generator=g))
            logits = list(LECTURE_LOGITS) if seed == 0 else _uniform(g, n, -3.0, 3.0)
            inputs = {"logits": logits, "upstream": _uniform(g, n, -1.0, 1.0)}
            label = "the notebook's logits" if seed == 0 else f"{n} random logits"
            if with_label:
                inputs["label"] = LECTURE_LABEL if seed == 0 else int(torch.randint(0, n, (1,), generator=g))
                label += f", label {inputs['label']}"
            out.append(Case(case_id, hidden, inputs, info={"seed": seed}, label=label))
        return out
    return cases


@torch.enable_grad()
def softmax_truth(case: Case) -> dict:
    logits = torch.tensor(case.inputs["logits"], dtype=torch.float64, requires_grad=True)
    probs = torch.softmax(logits, dim=0)
    probs.backward(torch.tensor(case.inputs["upstream"], dtype=torch.float64))
    return {"probs": probs.detach(), "dlogits": logits.grad}


@torch.enable_grad()
def nll_truth(case: Case) -> dict:
    logits = torch.tensor(case.inputs["logits"], dtype=torch.float64, requires_grad=True)
    loss = -torch.softmax(logits, dim=0)[case.inputs["label"]].log()
    loss.backward()
    return {"loss": loss.detach(), "dlogits": logits.grad}
