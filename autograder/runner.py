"""The grader's side of the student's process: start the fork server in the best sandbox available,
send it one case at a time, and turn whatever comes back (or does not) into a `RunResult`.

Sandboxes, strongest first; the first that works on this machine is used and named in every result:
- bubblewrap: read-only filesystem, private /tmp, no network, own pid namespace;
- `unshare -rn` (+ pid namespace where allowed): no network;
- none: resource limits only (a student laptop may have nothing else).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import wire

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "SYSTEMROOT", "VIRTUAL_ENV")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the worker drops it from the child's sys.path


def _preload() -> str:
    """The driver modules, imported once in the server rather than in every child."""
    from .assignments import NAMES
    return ",".join(f"autograder.assignments.{name}" for name in NAMES)


@dataclass
class RunResult:
    status: str                     # ok | error | timeout | not_implemented
    outputs: dict = field(default_factory=dict)
    message: str = ""
    where: str = ""
    kind: str = ""
    output: str = ""                # what the student's code printed (capped)
    seconds: float = 0.0
    autograd_calls: list = field(default_factory=list)


def _probe(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd + ["true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def sandbox_prefix(mode: str = "auto") -> tuple[tuple[str, ...], str]:
    """(command prefix, description) of the strongest sandbox that works here."""
    if mode == "none" or os.environ.get("AUTOGRADER_SANDBOX") == "none":
        return (), "none (resource limits only)"
    bwrap = shutil.which("bwrap")
    if bwrap:
        # /tmp stays visible (read-only): submissions are unpacked there. Writes go to a private /var/tmp.
        cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/var/tmp",
               "--setenv", "TMPDIR", "/var/tmp", "--setenv", "HOME", "/var/tmp",
               "--unshare-all", "--die-with-parent", "--new-session", "--"]
        if _probe(cmd):
            return tuple(cmd), "bubblewrap (read-only filesystem, no network, own pid namespace)"
    unshare = shutil.which("unshare")
    if unshare:
        for cmd, what in (([unshare, "-rnpf", "--mount-proc", "--"], "unshare (no network, own pid namespace)"),
                          ([unshare, "-rn", "--"], "unshare (no network)")):
            if _probe(cmd):
                return tuple(cmd), what
    return (), "none available on this machine (resource limits only)"


class Runner:
    """One fork server; `run()` is thread-safe (one case at a time). Restarts the server if a case
    killed it, so one submission's damage never reaches the next case."""

    def __init__(self, sandbox: str = "auto"):
        self.prefix, self.sandbox = sandbox_prefix(sandbox)
        self.isolated = self.sandbox.startswith("bubblewrap")  # real isolation (see credit_runner)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the server now (it imports torch in the background while the grader computes truths)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONHASHSEED="0", HOME=tempfile.gettempdir(), AUTOGRADER_PRELOAD=_preload(),
                   PYTHONPATH=str(PACKAGE_ROOT))
        self._proc = subprocess.Popen([*self.prefix, sys.executable, "-m", "autograder.worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, cwd="/", start_new_session=True)
        self._ready = False

    def _wait_ready(self) -> None:
        if not self._ready:
            hello = wire.recv(self._proc.stdout)
            if not hello or hello.get("status") != "ready":
                raise RuntimeError("the grading worker failed to start")
            self._ready = True

    def run(self, submission: Path, module: str, driver: str, inputs: dict, **limits) -> RunResult:
        """One case."""
        return self.run_cases(submission, module, driver, [inputs], **limits)[0]

    def run_cases(self, submission: Path, module: str, driver: str, cases: list[dict], *, time_limit: float,
                  memory_mb: int, blocked_imports=(), blocked_why: str = "",
                  forbid_autograd: bool = False) -> list[RunResult]:
        """All cases of one exercise, in one student process (a fresh one after a case that kills it).
        `time_limit` is per case."""
        request = {"submission": str(Path(submission).resolve()), "module": module, "driver": driver,
                   "cases": [wire.encode(inputs) for inputs in cases], "time_limit": time_limit,
                   "memory_mb": memory_mb, "blocked_imports": list(blocked_imports),
                   "blocked_why": blocked_why, "forbid_autograd": forbid_autograd}
        with self._lock:
            for attempt in (1, 2):
                self._ensure_started()
                try:
                    self._wait_ready()
                    wire.send(self._proc.stdin, request)
                    reply = wire.recv(self._proc.stdout)
                except (OSError, ValueError, RuntimeError):
                    reply = None
                if reply is not None:
                    break
                # The server died: during this exercise (its fault) or before it (restart, retry once).
                self.close()
                if attempt == 2:
                    return [RunResult("error", kind="crash",
                                      message="the grading process was killed while running this code")] * len(cases)
        replies = reply.get("replies") if reply.get("status") == "ok" else None
        if not isinstance(replies, list) or len(replies) != len(cases):
            failed = _to_result(reply if reply.get("status") == "error" else
                                {"status": "error", "kind": "internal", "message": "the grading worker failed"})
            return [failed] * len(cases)
        return [_to_result(r) if isinstance(r, dict) else
                RunResult("error", kind="malformed", message="unreadable reply") for r in replies]

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except Exception:
                pass
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except Exception:
                    pass
            self._proc = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


class IsolationMissing(RuntimeError):
    """Grading for credit was asked for on a machine with no isolation mechanism."""


def credit_runner(unsandboxed: bool = False) -> Runner:
    """A runner fit to grade for credit: it refuses (IsolationMissing, naming what to install) where no real
    isolation mechanism works, unless the operator said `--unsandboxed` (and every result then says so)."""
    runner = Runner()
    if not runner.isolated:
        if not unsandboxed:
            raise IsolationMissing(
                f"no isolation for the student's code on this machine (found: {runner.sandbox}). Install "
                "bubblewrap (`apt-get install bubblewrap`), or run as root with a dedicated unprivileged user "
                "(see the README), or pass --unsandboxed to grade without isolation")
        runner.sandbox = f"{runner.sandbox}; --unsandboxed: graded without isolation"
    return runner


def _to_result(reply: dict) -> RunResult:
    status = reply.get("status")
    if status not in ("ok", "error", "timeout", "not_implemented"):
        return RunResult("error", kind="malformed", message="the student's process sent an unknown reply")
    outputs = {}
    if status == "ok":
        try:
            outputs = wire.decode(reply.get("outputs"))
        except (ValueError, TypeError, KeyError) as exc:
            return RunResult("error", kind="malformed", message=f"returned a value the grader cannot read ({exc})")
        if not isinstance(outputs, dict):
            outputs = {"value": outputs}
    text = lambda key, n=2000: str(reply.get(key, ""))[:n]  # noqa: E731
    calls = reply.get("autograd_calls") or []
    return RunResult(status, outputs=outputs, message=text("message"), where=text("where", 300),
                     kind=text("kind", 40), output=text("output", 70000),
                     seconds=float(reply.get("seconds") or 0.0),
                     autograd_calls=[str(c)[:80] for c in calls][:10] if isinstance(calls, list) else [])
