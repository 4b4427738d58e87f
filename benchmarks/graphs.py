"""graphs assignment and gradcheck: grading time per case, and the cost of a numerical gradient check."""
from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def grading() -> None:
    from autograder.assignments import exercises
    from autograder.core.pipeline import grade
    from autograder.sandbox import Runner
    exs = exercises("graphs")
    os.environ.setdefault("AUTOGRADER_SECRET", "bench-secret")  # hidden cases derive from it
    with Runner() as runner:
        runner.start()
        grade(ROOT / "reference", exs[:1], hidden=False, runner=runner)  # warm: the worker has imported torch
        started = time.perf_counter()
        result = grade(ROOT / "reference", exs, hidden=True, runner=runner)
        seconds = time.perf_counter() - started
    n_cases = sum(len(result.exercises[i].checks[0].cases) for i in range(len(exs)))
    print(f"grade reference/graphs.py, public + hidden: {seconds:.2f} s for {n_cases} cases "
          f"({1000 * seconds / n_cases:.0f} ms per case), score {float(result.score):g}/{float(result.max_score):g}")


def gradcheck_cost() -> None:
    import torch
    from autograder.core.gradcheck import gradcheck
    g = torch.Generator().manual_seed(0)
    W = torch.randn(32, 32, generator=g, dtype=torch.float64)
    x = torch.randn(32, generator=g, dtype=torch.float64)
    f = lambda W, x: ((W @ x) ** 2).sum()  # noqa: E731
    n = W.numel() + x.numel()
    ours = _timed(lambda: gradcheck(f, W, x))
    sampled = _timed(lambda: gradcheck(f, W, x, samples=20))
    Wg, xg = W.clone().requires_grad_(), x.clone().requires_grad_()
    theirs = _timed(lambda: torch.autograd.gradcheck(f, (Wg, xg)))
    print(f"gradcheck, ||W x||^2 with W 32x32 ({n} elements): {ours * 1e3:.1f} ms "
          f"({1e6 * ours / n:.1f} us per element, {n * 2 + 1} evaluations of f); torch.autograd.gradcheck "
          f"{theirs * 1e3:.1f} ms (ratio {ours / theirs:.2f}); 20 sampled per tensor: {sampled * 1e3:.1f} ms")


def main() -> None:
    gradcheck_cost()
    grading()


if __name__ == "__main__":
    main()
