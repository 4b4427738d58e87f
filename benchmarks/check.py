"""`autograder check` on the full reference (every assignment) next to a bare `python -c "import torch"`,
measured in one run, interleaved so that the machine's load affects both alike.

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


def main() -> None:
    bare, check = [], []
    for _ in range(RUNS):
        seconds, _ = timed([sys.executable, "-c", "import torch"])
        bare.append(seconds)
        seconds, proc = timed([sys.executable, "-m", "autograder", "check", "reference"])
        if proc.returncode != 0 or "Total: 87/87" not in proc.stdout:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit("autograder check on the reference did not give full marks")
        check.append(seconds)
    b, c = statistics.median(bare), statistics.median(check)
    sandbox = next((line.strip() for line in proc.stdout.splitlines() if "sandbox" in line.lower()), "")
    print(f"bare `python -c 'import torch'`:        median {b:.2f} s (min {min(bare):.2f}) over {RUNS} runs")
    print(f"`autograder check reference` (87 points): median {c:.2f} s (min {min(check):.2f})")
    print(f"ratio check / bare torch import: {c / b:.2f}x (goal <= 1.6x)")
    if sandbox:
        print(f"  {sandbox}")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
