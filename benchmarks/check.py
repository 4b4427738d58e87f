"""`autograder check` on the full reference (every assignment) next to a bare `python -c "import torch"`,
measured in one run, interleaved so that the machine's load affects both alike: the time to the first
exercise's result (check shows each as it finishes) and to the whole check.

Goal (issue: one trust boundary): check <= 1.6x the bare torch import. Isolation costs time (a sandbox
to start, a driver loaded by file); this prints what it costs on this machine, with the sandbox named.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("CHECK_BENCH_RUNS", "5"))


def timed(cmd: list[str], cwd: Path = ROOT) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, proc


def timed_check(root: Path = ROOT) -> tuple[float, float, str, int]:
    """(seconds to the first exercise's table, seconds to the end, stdout, exit status): `check` prints each
    exercise's table as it finishes, so the first line of output is the first result. `root`: the checkout
    whose grader runs (its own `autograder` package comes first on the path from there)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "check", "reference"], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first, lines = None, []
    for line in proc.stdout:
        if first is None and line.strip():
            first = time.perf_counter() - started
        lines.append(line)
    status = proc.wait()
    return first or 0.0, time.perf_counter() - started, "".join(lines), status


def full_marks(stdout: str) -> bool:
    total = re.search(r"Total: ([\d.]+)/([\d.]+)", stdout)
    return bool(total) and float(total.group(1)) == float(total.group(2)) > 0


def main() -> None:
    # CHECK_BENCH_COMPARE=/path/to/another/checkout (e.g. main's): its check is timed in the same runs,
    # interleaved, so that both ratios see the same load.
    roots = {"this checkout": ROOT}
    if os.environ.get("CHECK_BENCH_COMPARE"):
        roots["compared: " + os.environ["CHECK_BENCH_COMPARE"]] = Path(os.environ["CHECK_BENCH_COMPARE"]).resolve()
    bare = []
    check = {name: [] for name in roots}
    first = {name: [] for name in roots}
    for _ in range(RUNS):
        seconds, _ = timed([sys.executable, "-c", "import torch"])
        bare.append(seconds)
        for name, root in roots.items():
            to_first, seconds, stdout, status = timed_check(root)
            if status != 0 or not full_marks(stdout):
                print(stdout[-3000:])
                raise SystemExit(f"autograder check on the reference did not give full marks ({name})")
            check[name].append(seconds)
            first[name].append(to_first)
    b = statistics.median(bare)
    print(f"bare `python -c 'import torch'`:        median {b:.2f} s (min {min(bare):.2f}) over {RUNS} runs")
    for name in roots:
        c, f = statistics.median(check[name]), statistics.median(first[name])
        print(f"[{name}] `autograder check reference`: median {c:.2f} s (min {min(check[name]):.2f})")
        print(f"  first exercise's result after:          median {f:.2f} s ({f / b:.2f}x the bare import)")
        print(f"  ratio check / bare torch import: {c / b:.2f}x (goal <= 1.6x)")
    sandbox = next((line.strip() for line in stdout.splitlines() if "sandbox" in line.lower()), "")
    if sandbox:
        print(f"  {sandbox}")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
