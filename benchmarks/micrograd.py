"""micrograd benchmarks: the wall time of `autograder check reference` (the micrograd assignment), and
the cost per case of the fork server (torch imported once, one fork per case) against a fresh Python
process per case (imports torch, the driver and the student's module every time), with their ratio.

The fresh-process variant exists only here, to answer the issue's question of which is faster. It runs
without a sandbox, which only favours it; both variants must return the same results.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What one fresh process per case has to do: everything the fork server does once, then the case.
FRESH_PROCESS = r"""
import importlib, sys
import torch, numpy  # the fork server preloads these once
submission, module_name, driver_path = sys.argv[1:4]
from autograder.runtime import wire
driver_module, driver_name = driver_path.split(":")
driver = getattr(importlib.import_module(driver_module), driver_name)
inputs = wire.decode(wire.unframe(sys.stdin.buffer.read())["inputs"])
sys.path.insert(0, submission)
module = importlib.import_module(module_name)
sys.stdout.buffer.write(wire.frame({"outputs": wire.encode(driver(module, inputs))}))
"""


def check_wall_time(submission: str, expect: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder", "check", submission, "-a", "micrograd"],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or expect not in proc.stdout:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        raise SystemExit(f"autograder check {submission} did not show {expect!r}")
    return seconds


def benchmark_cases():
    """Every public case of the micrograd exercises except the 100,000-node chain (its seconds of work
    would hide the per-case overhead being measured)."""
    from autograder.assignments import exercises
    from autograder.core.exercise import Seeds
    return [(ex, case) for ex in exercises("micrograd") if ex.id != "micrograd.deep_chain"
            for case in ex.cases(Seeds(hidden=False))]


def fork_server(cases, submission: Path) -> tuple[float, float, list]:
    """(server start-up seconds, seconds per case, outputs)."""
    from autograder.sandbox import Runner
    with Runner() as runner:
        started = time.perf_counter()
        runner.start()
        runner._wait_ready()  # the one-time cost: torch imported in the server
        startup = time.perf_counter() - started
        outputs, started = [], time.perf_counter()
        for ex, case in cases:
            run = runner.run(submission, ex.module, ex.driver, case.inputs, time_limit=ex.time_limit,
                             memory_mb=ex.memory_limit_mb, blocked_imports=ex.blocked_imports)
            assert run.status == "ok", (ex.id, run.status, run.message)
            outputs.append(run.outputs)
        return startup, (time.perf_counter() - started) / len(cases), outputs


def fresh_processes(cases, submission: Path) -> tuple[float, list]:
    """(seconds per case, outputs) with one new interpreter per case."""
    from autograder.runtime import wire
    outputs, started = [], time.perf_counter()
    for ex, case in cases:
        proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(submission), ex.module, ex.driver],
                              input=wire.frame({"inputs": wire.encode(case.inputs)}), capture_output=True,
                              cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr[-2000:].decode(errors="replace")
        outputs.append(wire.decode(wire.unframe(proc.stdout)["outputs"]))
    return (time.perf_counter() - started) / len(cases), outputs


def agree(a, b) -> bool:
    """The same results up to rounding: the engine keeps a node's inputs in a set ordered by object ids,
    so the order in which gradient contributions are added (and their last bit) varies between processes."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b))
    return repr(a) == repr(b)


def warm_grade(submission: Path) -> dict[str, float]:
    """Seconds per exercise with the worker already running (what a batch of submissions pays)."""
    from autograder.assignments import exercises
    from autograder.core.pipeline import grade
    from autograder.sandbox import Runner
    exs = exercises("micrograd")
    with Runner() as runner:
        grade(submission, exs, hidden=False, runner=runner)  # start the worker, warm the truth caches
        result = grade(submission, exs, hidden=False, runner=runner)
    assert result.score == result.max_score
    return {ex.id: ex.seconds for ex in result.exercises}


def main() -> None:
    reference = check_wall_time("reference", "Total: 25/25")
    template = check_wall_time("student_template", "Total: 0/25")
    print(f"autograder check reference (micrograd, 6 exercises, public cases): {reference:.2f} s wall")
    print(f"autograder check student_template (all not implemented):           {template:.2f} s wall")

    per_exercise = warm_grade(ROOT / "reference")
    print(f"warm grading of the reference (worker running): {sum(per_exercise.values()):.2f} s = " +
          ", ".join(f"{k.split('.', 1)[1]} {v:.2f}" for k, v in per_exercise.items()))

    cases = benchmark_cases()
    submission = ROOT / "reference"
    startup, fork_per_case, fork_out = fork_server(cases, submission)
    fresh_per_case, fresh_out = fresh_processes(cases, submission)
    same = all(agree(a, b) for a, b in zip(fork_out, fresh_out))
    print(f"{len(cases)} cases (ops, backward, reuse, expressions, nn):")
    print(f"  fork server:            {1000 * fork_per_case:7.1f} ms per case (+ {startup:.2f} s once to start it)")
    print(f"  fresh process per case: {1000 * fresh_per_case:7.1f} ms per case")
    print(f"  ratio fresh / fork:     {fresh_per_case / fork_per_case:7.1f}x"
          f"   (same results: {'yes' if same else 'NO'})")
    breakeven = startup / max(fresh_per_case - fork_per_case, 1e-9)
    print(f"  the server's start-up is paid back after {breakeven:.1f} cases")


if __name__ == "__main__":
    main()
