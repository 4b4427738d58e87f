"""`autograder watch`: seconds from a saved edit of one backprop-ninja function to its table, next to a bare
`python -c "import torch"`, measured in one run.

Goal (DESIGN.md, decision 13; issue 20): the first table within 2 s of a save. The watcher is started once
on a copy of the reference (its first full check is not timed); then each round rewrites one function in
a way that changes its AST (so it is regraded) and times, from the write, (a) the line of that exercise's
table title and (b) the line that says it is watching again (every exercise the edit touched is done).
`manual_backward` is regraded alone; `tanh_backward` also regrades `forward_backward` and `train`, which
call it.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("WATCH_BENCH_RUNS", "5"))
EDITS = {  # function -> (text in the reference, an edit with a different AST and the same values)
    "manual_backward": ("    dh = dlogits @ W2.T\n", "    dh = (dlogits @ W2.T) * 1.0\n"),
    "tanh_backward": ("    dhpreact = (1.0 - h**2) * dh\n    ### END SOLUTION\n    return dhpreact",
                      "    dhpreact = (1.0 - h * h) * dh\n    ### END SOLUTION\n    return dhpreact"),
}


def bare_import() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - started


def read_until(proc, marker: str, timeout: float = 300) -> float:
    """Read the watcher's output until a line containing `marker`; the time it arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the watcher stopped before {marker!r}")
        if marker in line:
            return time.perf_counter()
    raise SystemExit(f"{marker!r} not seen in {timeout} s")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    sub = work / "sub"
    sub.mkdir()
    source = (ROOT / "reference" / "backprop_ninja.py").read_text()
    path = sub / "backprop_ninja.py"
    path.write_text(source)
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "watch", str(sub), "-a", "backprop_ninja",
                             "--interval", "0.1"], cwd=work, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    figures: dict = {name: ([], []) for name in EDITS}
    bare = []
    try:
        read_until(proc, "for changes")  # the first full check, not timed
        for _ in range(RUNS):
            bare.append(bare_import())
            for name, (old, new) in EDITS.items():
                assert old in source, f"the reference no longer has {old!r}"
                time.sleep(0.3)
                written = time.perf_counter()
                path.write_text(source.replace(old, new, 1))      # the student saves an edit of `name`
                figures[name][0].append(read_until(proc, f"backprop_ninja.{name}  ") - written)
                figures[name][1].append(read_until(proc, "for changes") - written)
                time.sleep(0.3)
                path.write_text(source)                           # and back (not timed)
                read_until(proc, "for changes")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    b = statistics.median(bare)
    print(f"bare `python -c 'import torch'`: median {b:.2f} s over {len(bare)} runs")
    for name, (table, done) in figures.items():
        t, d = statistics.median(table), statistics.median(done)
        print(f"watch, save of {name} -> its table: median {t:.2f} s (max {max(table):.2f}; {t / b:.2f}x the bare "
              f"import; goal <= 2 s); every exercise it touches done: median {d:.2f} s")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
