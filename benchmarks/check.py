"""`autograder check` on the full reference (every assignment) next to a bare `python -c "import torch"`,
measured in one run, interleaved so that the machine's load affects both alike: the time to the first
exercise's result (check shows each as it finishes) and to the whole check.

Goal (issue: one trust boundary): check <= 1.6x the bare torch import. Isolation costs time (a sandbox
to start, a driver loaded by file); this prints what it costs on this machine, with the sandbox named.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("CHECK_BENCH_RUNS", "5"))


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - started, proc


def timed_check() -> tuple[float, float, str, int]:
    """(seconds to the first exercise's table, seconds to the end, stdout, exit status): `check` prints each
    exercise's table as it finishes, so the first line of output is the first result."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "check", "reference"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first, lines = None, []
    for line in proc.stdout:
        if first is None and line.strip():
            first = time.perf_counter() - started
        lines.append(line)
    status = proc.wait()
    return first or 0.0, time.perf_counter() - started, "".join(lines), status


def main() -> None:
    bare, check, first = [], [], []
    for _ in range(RUNS):
        seconds, _ = timed([sys.executable, "-c", "import torch"])
        bare.append(seconds)
        to_first, seconds, stdout, status = timed_check()
        if status != 0 or "Total: 87/87" not in stdout:
            print(stdout[-3000:])
            raise SystemExit("autograder check on the reference did not give full marks")
        check.append(seconds)
        first.append(to_first)
    b, c, f = statistics.median(bare), statistics.median(check), statistics.median(first)
    sandbox = next((line.strip() for line in stdout.splitlines() if "sandbox" in line.lower()), "")
    print(f"bare `python -c 'import torch'`:        median {b:.2f} s (min {min(bare):.2f}) over {RUNS} runs")
    print(f"`autograder check reference` (87 points): median {c:.2f} s (min {min(check):.2f})")
    print(f"  first exercise's result after:          median {f:.2f} s ({f / b:.2f}x the bare import)")
    print(f"ratio check / bare torch import: {c / b:.2f}x (goal <= 1.6x)")
    if sandbox:
        print(f"  {sandbox}")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
