"""Where grading time goes, and what each isolation step costs, measured in one run on this machine:

- a fork server's start (torch imported once per server), without a sandbox and in bubblewrap;
- one group of cases (one child: fork, limits, seccomp, the autograd guard, the submission's import, a
  trivial case, the child's end, the wipe and the verification of the sandbox), split in its phases, with
  and without the sandbox, with and without the guard;
- children per submission of each assignment (one per exercise for the public cases, one for the hidden),
  so the per-submission floor of the execution layer;
- the truths of a run (computed once per run).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

REPEAT = 15


def _median_ms(values) -> float:
    return statistics.median(values) * 1000


def per_group(mechanism: str, forbid_autograd: bool) -> dict:
    """Median milliseconds of one group (a trivial case) and of its phases, seen from the grader."""
    from autograder.sandbox import client as R
    sub = Path(tempfile.mkdtemp(prefix="bench-iso-"))
    (sub / "mod.py").write_text("def f():\n    return 1.0\n")
    phases: dict[str, list[float]] = {}
    with R.Runner(mechanism) as r:
        if r.mechanism.name != mechanism:
            return {"skipped": r.mechanism.problem or r.mechanism.description}
        started = time.perf_counter()
        r.start()
        r._wait_ready()
        start_s = time.perf_counter() - started
        control = r._control

        def timed_control(message, fds=(), timeout=R.CONTROL_TIMEOUT):
            t = time.perf_counter()
            try:
                return control(message, fds, timeout)
            finally:
                phases.setdefault({"run": "fork (server)", "end": "end, wipe, verify (server)"}[message["op"]],
                                  []).append(time.perf_counter() - t)
        r._control = timed_control
        exchange = R._Stream.exchange

        def timed_exchange(self, *args):
            t = time.perf_counter()
            try:
                return exchange(self, *args)
            finally:
                phases.setdefault("child setup + case", []).append(time.perf_counter() - t)
        R._Stream.exchange = timed_exchange
        total = []
        try:
            for i in range(REPEAT + 2):
                t = time.perf_counter()
                got = r.run_cases(sub, "mod", "benchmarks._isolation_driver:call", [{}], time_limit=10,
                                  memory_mb=2048, forbid_autograd=forbid_autograd)
                if i >= 2:  # the first ones warm the caches
                    total.append(time.perf_counter() - t)
                assert got[0].status == "ok", got[0]
        finally:
            R._Stream.exchange = exchange
    return {"start_s": start_s, "group_ms": _median_ms(total),
            **{name: _median_ms(v[2:]) for name, v in phases.items()}}


def main() -> None:
    from autograder.assignments import exercises
    from autograder.core.exercise import Seeds
    from autograder.core.pipeline import prepared_cases
    rows = {}
    for mechanism in ("none", "bwrap"):
        for guard in (False, True):
            rows[(mechanism, guard)] = per_group(mechanism, guard)
    print("one group of cases (one child), median of", REPEAT, "runs, milliseconds:")
    for (mechanism, guard), row in rows.items():
        if "skipped" in row:
            print(f"  {mechanism:5} guard {'on ' if guard else 'off'}: skipped ({row['skipped']})")
            continue
        parts = ", ".join(f"{k} {v:.0f}" for k, v in row.items() if k not in ("start_s", "group_ms"))
        print(f"  {mechanism:5} guard {'on ' if guard else 'off'}: {row['group_ms']:.0f} ms ({parts}); "
              f"server start {row['start_s']:.2f} s")
    none, bwrap = rows[("none", True)], rows[("bwrap", True)]
    if "group_ms" in none and "group_ms" in bwrap:
        off = rows[("bwrap", False)]
        print(f"cost per child: the sandbox (bwrap vs none) {bwrap['group_ms'] - none['group_ms']:+.0f} ms; "
              f"the autograd guard {bwrap['group_ms'] - off['group_ms']:+.0f} ms; the server start in bwrap "
              f"{bwrap['start_s'] - none['start_s']:+.2f} s (once per worker, and per replaced server)")
    seeds = Seeds(hidden=True, secret="bench")
    for name in ("graphs", "backprop_ninja", "micrograd"):
        exs = exercises(name)
        started = time.perf_counter()
        for ex in exs:
            prepared_cases(ex, seeds)
        truths = time.perf_counter() - started
        children = 2 * len(exs)
        floor = children * bwrap.get("group_ms", float("nan")) / 1000
        print(f"{name}: {len(exs)} exercises -> {children} children per submission (public and hidden apart): "
              f"an execution-layer floor of ~{floor:.2f} s per submission (one job) before the student's own "
              f"code runs; the run's truths {truths:.2f} s, once per run")


if __name__ == "__main__":
    main()
