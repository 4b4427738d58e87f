"""The student's side: a fork server that runs one exercise case per forked child.

`python -m autograder.worker` is started by `runner.Runner`, inside whatever sandbox the machine offers.
It imports torch once (the expensive part) and then, for each request, forks a child that imports the
student's module afresh, runs the exercise's driver under time and memory limits, and writes one JSON
reply. The server itself never runs a parallel torch op, so forked children can use torch safely (GNU
OpenMP hangs in a child forked after the parent used its thread pool); children use one thread anyway.

The child is disposable: whatever it prints, patches, raises or exits with ends with it.
"""
from __future__ import annotations

import ctypes
import importlib
import io
import os
import resource
import select
import signal
import sys
import tempfile
import time
import traceback

from . import wire

OUTPUT_LIMIT = 64 * 1024  # bytes of a child's stdout/stderr kept for the report
_autograd_calls: list[str] = []


class AutogradUsed(BaseException):
    """Raised in the student's process when it reaches for autograd; BaseException so that a
    student's `except Exception` does not swallow it."""


class BlockedImport(ImportError):
    pass


class _ImportBlocker:
    """A meta path finder that refuses the named top-level packages."""

    def __init__(self, names, why):
        self.names, self.why = set(names), why

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise BlockedImport(f"import {fullname} is not allowed here: {self.why}")
        return None


def _block_imports(names, why):
    for mod in list(sys.modules):
        if mod.split(".")[0] in names:
            del sys.modules[mod]
    sys.meta_path.insert(0, _ImportBlocker(names, why))


def _trip_autograd():
    """Replace the entry points of autograd with tripwires (the student must backprop by hand)."""
    import torch

    def tripwire(what):
        def f(*args, **kwargs):
            _autograd_calls.append(what)
            raise AutogradUsed(f"{what} was called: this exercise must compute gradients by hand")
        return f

    torch.Tensor.backward = tripwire("Tensor.backward()")
    torch.autograd.backward = tripwire("torch.autograd.backward()")
    torch.autograd.grad = tripwire("torch.autograd.grad()")
    for name in ("grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"):
        if name != "vmap" and hasattr(torch.func, name):
            setattr(torch.func, name, tripwire(f"torch.func.{name}()"))
    torch.autograd.functional.vjp = tripwire("torch.autograd.functional.vjp()")
    torch.autograd.functional.jacobian = tripwire("torch.autograd.functional.jacobian()")
    torch.set_grad_enabled(False)
    torch.enable_grad = tripwire("torch.enable_grad()")  # noqa: the student may not switch it back on
    torch.set_grad_enabled = tripwire("torch.set_grad_enabled()")


def _where(exc: BaseException, root: str) -> str:
    """`file, line N, in func` of the innermost frame in the submission (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{os.path.relpath(exc.filename, root) if exc.filename.startswith(root) else exc.filename}, line {exc.lineno}"
    inside = [f for f in frames if f.filename.startswith(root + os.sep)]
    frame = (inside or frames or [None])[-1]
    if frame is None:
        return ""
    name = os.path.relpath(frame.filename, root) if frame in inside else os.path.basename(frame.filename)
    return f"{name}, line {frame.lineno}, in {frame.name}"


def _reply_for_exception(exc: BaseException, root: str) -> dict:
    where = _where(exc, root)
    if isinstance(exc, AutogradUsed):
        return {"status": "error", "kind": "autograd_used", "message": str(exc), "where": where}
    if isinstance(exc, NotImplementedError):
        return {"status": "not_implemented", "message": "raises NotImplementedError", "where": where}
    if isinstance(exc, SystemExit):
        return {"status": "error", "kind": "exit", "message": f"called sys.exit({exc.code!r})", "where": where}
    if isinstance(exc, MemoryError):
        return {"status": "error", "kind": "memory", "message": "ran out of memory (memory limit)", "where": where}
    if isinstance(exc, RecursionError):
        return {"status": "error", "kind": "recursion", "message": "RecursionError: maximum recursion depth exceeded",
                "where": where}
    if isinstance(exc, BlockedImport):
        return {"status": "error", "kind": "blocked_import", "message": str(exc), "where": where}
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)  # `where` has file and line
    if len(text) > 300:
        text = text[:300] + "..."
    return {"status": "error", "kind": "exception", "message": f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
            "where": where}


def _child(request: dict, result_fd: int, output_fd: int) -> None:
    """In the forked child: limits, import, run, reply. Never returns."""
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True, errors="replace")
        sys.stderr = sys.stdout
        memory = int(request.get("memory_mb", 2048)) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(request.get("time_limit", 20)) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.chdir(tempfile.mkdtemp(prefix="student-"))
        import torch
        torch.set_num_threads(1)
        root = os.path.realpath(request["submission"])
        driver_module, driver_name = request["driver"].split(":")
        driver = getattr(importlib.import_module(driver_module), driver_name)
        # The grader's own checkout (with reference/ in it) is no import root for the student's code.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != package_root and p not in ("", ".")]
        sys.path.insert(0, root)
        sys.setrecursionlimit(int(request.get("recursion_limit", 1000) or 1000))
        inputs = wire.decode(request["inputs"])
        blocked = request.get("blocked_imports") or []
        if request.get("forbid_autograd"):
            _trip_autograd()
        if blocked:
            _block_imports(blocked, request.get("blocked_why", "not allowed in this exercise"))
        start = time.perf_counter()
        try:
            module = importlib.import_module(request["module"])
            outputs = driver(module, inputs)
            reply = {"status": "ok", "outputs": wire.encode(outputs)}
        except BaseException as exc:  # noqa: everything the student's code does ends here
            reply = _reply_for_exception(exc, root)
        reply["seconds"] = time.perf_counter() - start
        if _autograd_calls:
            reply["autograd_calls"] = sorted(set(_autograd_calls))
        with os.fdopen(result_fd, "wb") as out:
            wire.send(out, reply)
    except BaseException as exc:  # the reply itself failed (e.g. unencodable output, memory)
        try:
            with os.fdopen(os.dup(result_fd), "wb") as out:
                wire.send(out, {"status": "error", "kind": "internal", "message": f"could not send the result: {exc!r}"})
        except BaseException:
            pass
    finally:
        os._exit(0)


def _reap_orphans() -> None:
    """Kill whatever a child left behind (we are a subreaper, so orphans are re-parented to us)."""
    me = str(os.getpid())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            ppid = stat.rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(int(pid), signal.SIGKILL)
                os.waitpid(int(pid), 0)
            except (OSError, ChildProcessError):
                pass


def run_one(request: dict) -> dict:
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        os.close(output_r)
        _child(request, result_w, output_w)
    os.close(result_w)
    os.close(output_w)
    limit = float(request.get("time_limit", 20))
    deadline = started + limit
    buffers = {result_r: bytearray(), output_r: bytearray()}
    open_fds = [result_r, output_r]
    timed_out = False
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
                continue
            buf = buffers[fd]
            if fd == output_r:
                if len(buf) < OUTPUT_LIMIT:
                    buf.extend(chunk[: OUTPUT_LIMIT - len(buf)])
            elif len(buf) < wire.MAX_MESSAGE:
                buf.extend(chunk)
    if timed_out:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except OSError:
                pass
    _, status = os.waitpid(pid, 0)
    _reap_orphans()
    for fd in (result_r, output_r):
        os.close(fd)
    seconds = time.monotonic() - started
    output = bytes(buffers[output_r]).decode("utf-8", "replace")
    if timed_out:
        return {"status": "timeout", "message": f"did not finish within {limit:g} s", "output": output,
                "seconds": seconds}
    try:
        reply = wire.recv(io.BytesIO(bytes(buffers[result_r])))
    except ValueError as exc:
        reply = {"status": "error", "kind": "malformed", "message": f"sent a malformed result ({exc})"}
    if reply is None:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            why = {"SIGXCPU": "CPU time limit exceeded", "SIGKILL": "killed (memory or time limit)",
                   "SIGSEGV": "crashed (segmentation fault; often the memory limit)"}.get(name, f"killed by {name}")
            reply = {"status": "timeout" if name == "SIGXCPU" else "error", "kind": "crash", "message": why}
        else:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            reply = {"status": "error", "kind": "exit",
                     "message": f"the process exited (status {code}) without returning a result, e.g. os._exit()"}
    reply["output"] = output + ("\n[output truncated]" if len(output.encode()) >= OUTPUT_LIMIT else "")
    reply.setdefault("seconds", seconds)
    return reply


def serve() -> None:
    # The protocol owns the original stdout; anything else printed goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = os.fdopen(os.dup(0), "rb")
    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
    except Exception:
        pass
    import torch  # noqa: F401  preloaded once: every forked child starts warm
    import numpy  # noqa: F401
    for name in os.environ.get("AUTOGRADER_PRELOAD", "").split(","):
        if name:
            importlib.import_module(name)
    wire.send(proto_out, {"status": "ready", "pid": os.getpid()})
    while True:
        try:
            request = wire.recv(proto_in)
        except ValueError:
            return
        if request is None:
            return
        try:
            reply = run_one(request)
        except Exception as exc:  # a bug of ours: report it, keep serving
            reply = {"status": "error", "kind": "internal", "message": f"grader worker failed: {exc!r}"}
        wire.send(proto_out, reply)


if __name__ == "__main__":
    serve()
