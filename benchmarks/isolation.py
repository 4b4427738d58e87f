"""Where grading time goes, and what each isolation step costs, measured in one run on this machine:

- a fork server's start (torch imported once per server), without a sandbox and in bubblewrap;
- one group of cases (one child: fork, limits, seccomp, the autograd guard, the submission's import, a
  trivial case, the child's end, the wipe and the verification of the sandbox), split in its phases as the
  grader sees them (control round trips, the first case) and as the server and the child report them
  (fork; the child's setup to its first case; the child's exit, reaping, wipe, verification), with and
  without the sandbox, with and without the guard;
- children per submission of each assignment (one per exercise for the public cases, one for the hidden),
  so the per-submission floor of the execution layer;
- the truths of a run (computed once per run).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

REPEAT = 15


def _median_ms(values) -> float:
    return statistics.median(values) * 1000


def per_group(mechanism: str, forbid_autograd: bool) -> dict:
    """Median milliseconds of one group (a trivial case) and of its phases: seen from the grader (the
    control round trips, the exchange with the child) and as the server and the child report them (the
    fork; the child's setup up to its first case; the end: the child's exit, the reaping of its orphans,
    the wipe and the verification of a clean state)."""
    from autograder.sandbox import client as R
    sub = Path(tempfile.mkdtemp(prefix="bench-iso-"))
    (sub / "mod.py").write_text("def f():\n    return 1.0\n")
    phases: dict[str, list[float]] = {}

    def note(name: str, seconds) -> None:
        if isinstance(seconds, (int, float)):
            phases.setdefault(name, []).append(float(seconds))

    with R.Runner(mechanism) as r:
        if r.mechanism.name != mechanism:
            return {"skipped": r.mechanism.problem or r.mechanism.description}
        started = time.perf_counter()
        r.start()
        r._wait_ready()
        start_s = time.perf_counter() - started
        # The server backs its memory with huge pages on a thread for ~0.3 s after it is ready (a child forked
        # meanwhile costs more: worker._collapse_to_huge_pages); the figures below are the steady state.
        time.sleep(1.0)
        control = r._control

        def timed_control(message, fds=(), timeout=R.CONTROL_TIMEOUT):
            t = time.perf_counter()
            try:
                answer = control(message, fds, timeout)
            finally:
                note({"run": "run request (grader)", "end": "end request (grader)"}[message["op"]],
                     time.perf_counter() - t)
            for name, seconds in (answer.get("seconds") or {}).items():
                note(f"{name} (server)", seconds)
            return answer
        r._control = timed_control
        exchange = R._Stream.exchange

        def timed_exchange(self, *args):
            t = time.perf_counter()
            try:
                reply = exchange(self, *args)
            finally:
                note("first case, child setup included (grader)", time.perf_counter() - t)
            note("setup (child)", (reply or {}).get("setup_seconds"))
            note("setup_cpu (child)", (reply or {}).get("setup_cpu"))
            return reply
        R._Stream.exchange = timed_exchange
        total = []
        try:
            for i in range(REPEAT + 2):
                if i == 2:  # the first ones warm the caches
                    phases.clear()
                t, cpu = time.perf_counter(), time.process_time()
                got = r.run_cases(sub, "mod", "benchmarks._isolation_driver:call", [{}], time_limit=10,
                                  memory_mb=2048, forbid_autograd=forbid_autograd)
                if i >= 2:
                    total.append(time.perf_counter() - t)
                    note("grader_cpu", time.process_time() - cpu)
                assert got[0].status == "ok", got[0]
        finally:
            R._Stream.exchange = exchange
    cpu = [sum(parts) for parts in zip(*(phases.get(name, [0.0] * len(total)) for name in CPU_PARTS))]
    return {"start_s": start_s, "group_ms": _median_ms(total), "cpu_ms": _median_ms(cpu),
            **{name: _median_ms(v) for name, v in phases.items()}}


# The CPU a group costs, wherever it is spent (load on a shared machine inflates the wall clock, not these).
CPU_PARTS = ("grader_cpu", "fork_cpu (server)", "child_cpu (server)", "end_cpu (server)")


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
        print(f"  {mechanism:5} guard {'on ' if guard else 'off'}: {row['group_ms']:.1f} ms wall, {row['cpu_ms']:.1f} ms "
              f"CPU (grader, server and child); server start {row['start_s']:.2f} s")
        print("      wall: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()
                                        if k not in ("start_s", "group_ms", "cpu_ms") and "cpu" not in k))
        print("      CPU:  " + ", ".join(f"{k.replace('_cpu', '')} {v:.1f}" for k, v in row.items()
                                        if k != "cpu_ms" and "cpu" in k))
    none, bwrap = rows[("none", True)], rows[("bwrap", True)]
    if "group_ms" in none and "group_ms" in bwrap:
        off = rows[("bwrap", False)]
        print(f"cost per child: the sandbox (bwrap vs none) {bwrap['group_ms'] - none['group_ms']:+.0f} ms wall, "
              f"{bwrap['cpu_ms'] - none['cpu_ms']:+.1f} ms CPU; the autograd guard {bwrap['group_ms'] - off['group_ms']:+.0f} "
              f"ms wall, {bwrap['cpu_ms'] - off['cpu_ms']:+.1f} ms CPU; the server start in bwrap "
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
        cpu = children * bwrap.get("cpu_ms", float("nan")) / 1000
        print(f"{name}: {len(exs)} exercises -> {children} children per submission (public and hidden apart): "
              f"an execution-layer floor of ~{floor:.2f} s wall ({cpu:.2f} s CPU) per submission (one job) before "
              f"the student's own code runs; the run's truths {truths:.2f} s, once per run")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
