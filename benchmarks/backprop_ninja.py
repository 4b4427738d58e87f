"""backprop_ninja benchmarks: the wall time of `autograder check` on a full submission (target < 3 s on
2 cores), the grading time once the worker is warm, and training with the manual backward.

Training: `BACKPROP_NINJA_STEPS` steps (default 50,000; the lecture's run is 200,000, ~4 min here), the
first 3/4 at lr 0.1 and the rest at 0.01 as in the lecture, then the loss on the dev split with
batchnorm calibrated on the training set. The lecture reaches ~2.1 after 200,000 steps.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_wall_time(runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "autograder", "check", "reference", "-a", "backprop_ninja"],
                              cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0 or "Total: 50/50" not in proc.stdout:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit("autograder check on the reference did not give full marks")
    return times


def cli_startup_time(runs: int = 3) -> float:
    """`autograder --help`: the interpreter, the CLI and every registered subcommand module, no grading."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autograder", "--help"], cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def warm_grade_time(runs: int = 3) -> list[float]:
    from autograder.assignments import exercises
    from autograder.core.pipeline import grade
    from autograder.sandbox import Runner
    exs = exercises("backprop_ninja")
    times = []
    with Runner() as runner:
        grade(ROOT / "reference", exs, hidden=False, runner=runner)  # worker started, truths warm
        for _ in range(runs):
            started = time.perf_counter()
            grade(ROOT / "reference", exs, hidden=False, runner=runner)
            times.append(time.perf_counter() - started)
    return times


def train_reference(steps: int) -> None:
    import torch
    from autograder.core.data import datasets
    torch.set_num_threads(1)  # tiny tensors: one thread is the fastest on a shared 2-core machine
    spec = importlib.util.spec_from_file_location("reference_backprop_ninja", ROOT / "reference" / "backprop_ninja.py")
    bn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bn)
    (Xtr, Ytr), (Xdev, Ydev), _ = datasets(bn.BLOCK_SIZE)
    params = bn.init_params()
    started = time.perf_counter()
    with torch.no_grad():
        first = steps * 3 // 4
        losses = bn.train(params, Xtr, Ytr, first, 0.1, seed=0)
        losses += bn.train(params, Xtr, Ytr, steps - first, 0.01, seed=1)
    seconds = time.perf_counter() - started
    bnmean, bnvar = bn.batchnorm_stats(params, Xtr)
    train_loss = bn.evaluate(params, Xtr, Ytr, bnmean, bnvar)
    dev_loss = bn.evaluate(params, Xdev, Ydev, bnmean, bnvar)
    print(f"training with the manual backward: {steps} steps in {seconds:.1f} s "
          f"({seconds / steps * 1e3:.2f} ms/step); first loss {losses[0]:.3f}")
    print(f"  train loss {train_loss:.4f}, dev loss {dev_loss:.4f} (lecture: ~2.1 after 200,000 steps)")
    print("  samples:", " ".join(bn.sample(params, bnmean, bnvar, count=8)))


def main() -> None:
    wall = check_wall_time()
    print(f"autograder check reference -a backprop_ninja (7 exercises, 11 public cases): "
          f"median {statistics.median(wall):.2f} s wall, min {min(wall):.2f} s (target < 3 s on 2 cores)")
    print(f"  of which CLI startup (`autograder --help`, no torch, no grading): {cli_startup_time():.2f} s")
    warm = warm_grade_time()
    print(f"grading once the worker is up: median {statistics.median(warm):.2f} s; "
          f"startup share of a check: {1 - statistics.median(warm) / statistics.median(wall):.0%}")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    train_reference(int(os.environ.get("BACKPROP_NINJA_STEPS", "50000")))


if __name__ == "__main__":
    main()
