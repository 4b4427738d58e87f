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
import json
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
import traceback

from . import wire
from .guard import AutogradUsed, BlockedImport, _autograd_calls, after_case, block_imports, prepare, trip_autograd

OUTPUT_LIMIT = 64 * 1024  # bytes of a child's stdout/stderr kept for the report


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


def _reset_random_state() -> None:
    """Every case starts from the same random state, whatever the cases before it drew."""
    import random
    random.seed(0)
    for name, seed in (("torch", "manual_seed"), ("numpy.random", "seed")):
        module = sys.modules.get(name)
        if module is not None:
            getattr(module, seed)(0)


def _child(request: dict, result_fd: int, output_fd: int) -> None:
    """In the forked child: limits, import, then each case in turn, one reply per case. Never returns.

    All of one exercise's cases share this process (one fork, not one per case); a case that times
    out or kills the process costs that case, and the server runs the rest in a new child.
    """
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(devnull)
        # Only our two pipes stay open: the server's protocol pipes are not the student's to write to.
        result_fd = os.dup2(result_fd, 3)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        output_fd = 1
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True, errors="replace")
        sys.stderr = sys.stdout
        me = os.getpid()
        cases = request["cases"]
        memory = int(request.get("memory_mb", 2048)) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(float(request.get("time_limit", 20)) * len(cases)) + 2
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
        inputs = [wire.decode(c) for c in cases]
        blocked = request.get("blocked_imports") or []
        if request.get("forbid_autograd") or "torch" in blocked:  # torch is in memory even where it is refused
            trip_autograd()
        if blocked:
            block_imports(blocked, request.get("blocked_why", "not allowed in this exercise"))
        marker = ("\0" + request["marker"] + "\0").encode()
        out = os.fdopen(result_fd, "wb")
        module, import_error = None, None
        try:
            module = importlib.import_module(request["module"])
        except BaseException as exc:  # noqa: a broken module fails every case the same way
            import_error = _reply_for_exception(exc, root)
        for case_inputs in inputs:
            _reset_random_state()
            del _autograd_calls[:]
            start = time.perf_counter()
            if import_error:
                reply = dict(import_error)
            else:
                try:
                    reply = {"status": "ok", "outputs": wire.encode(driver(module, case_inputs))}
                except BaseException as exc:  # noqa: everything the student's code does ends here
                    reply = _reply_for_exception(exc, root)
            if os.getpid() != me:  # a copy the student's code forked: it is no case runner
                os._exit(0)
            reply["seconds"] = time.perf_counter() - start
            if after_case():  # the guards intact, and what was found at import
                reply["autograd_calls"] = sorted(set(_autograd_calls))
            try:
                sys.stdout.flush()
            except BaseException:
                pass
            os.write(output_fd, marker)
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


class _CaseStream:
    """Splits what one child sends into per-case replies (result pipe) and per-case output (output pipe)."""

    def __init__(self, marker: bytes):
        self.marker = marker
        self.results = bytearray()
        self.output = bytearray()
        self.replies: list[dict] = []
        self.outputs: list[str] = []
        self.malformed = ""

    def feed_result(self, chunk: bytes) -> None:
        self.results.extend(chunk)
        while len(self.results) >= 8 and not self.malformed:
            (size,) = struct.unpack("<Q", bytes(self.results[:8]))
            if size > wire.MAX_MESSAGE:
                self.malformed = "sent a reply larger than the limit"
                return
            if len(self.results) < 8 + size:
                return
            body = bytes(self.results[8:8 + size])
            del self.results[:8 + size]
            try:
                reply = json.loads(body)
                if not isinstance(reply, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self.malformed = f"sent a malformed result ({exc})"
                return
            self.replies.append(reply)

    def feed_output(self, chunk: bytes) -> None:
        self.output.extend(chunk)
        while True:
            at = self.output.find(self.marker)
            if at < 0:
                break
            self.outputs.append(_capped(bytes(self.output[:at])))
            del self.output[:at + len(self.marker)]
        if len(self.output) > 4 * OUTPUT_LIMIT:  # keep the head; the marker may still come
            keep = self.output[:OUTPUT_LIMIT] + self.output[-len(self.marker):]
            self.output[:] = keep

    def rest_of_output(self) -> str:
        return _capped(bytes(self.output))


def _capped(raw: bytes) -> str:
    text = raw[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return text + "\n[output truncated]" if len(raw) > OUTPUT_LIMIT else text


def _run_child(request: dict, stream: _CaseStream) -> tuple[bool, int]:
    """Fork a child for `request["cases"]`; feed `stream` until it ends. (timed_out, wait status)."""
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        os.close(output_r)
        _child(request, result_w, output_w)
    os.close(result_w)
    os.close(output_w)
    limit = float(request.get("time_limit", 20))
    deadline = time.monotonic() + limit
    open_fds = [result_r, output_r]
    timed_out = all_in = False
    while open_fds and not stream.malformed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = not all_in
            break
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
            elif fd == output_r:
                stream.feed_output(chunk)
            else:
                done = len(stream.replies)
                stream.feed_result(chunk)
                if len(stream.replies) > done:  # each case gets the whole time limit
                    deadline = time.monotonic() + limit
        if not all_in and len(stream.replies) == len(request["cases"]):
            # Done; the rest of the output follows at once unless something left behind holds the pipe.
            all_in, deadline = True, min(deadline, time.monotonic() + 0.5)
    if timed_out or stream.malformed or open_fds:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except OSError:
                pass
    _, status = os.waitpid(pid, 0)
    _reap_orphans()
    for fd in (result_r, output_r):
        os.close(fd)
    return timed_out, status


def _death_reply(status: int) -> dict:
    """Why a child ended without replying for its current case."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU time limit exceeded", "SIGKILL": "killed (memory or time limit)",
               "SIGSEGV": "crashed (segmentation fault; often the memory limit)"}.get(name, f"killed by {name}")
        return {"status": "timeout" if name == "SIGXCPU" else "error", "kind": "crash", "message": why}
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return {"status": "error", "kind": "exit",
            "message": f"the process exited (status {code}) without returning a result, e.g. os._exit()"}


def run_cases(request: dict) -> list[dict]:
    """One reply per case. Cases run in one child; after a case that times out or kills it, the
    remaining cases run in a fresh child, so that case costs only itself."""
    cases = request["cases"]
    replies: list[dict] = []
    while len(replies) < len(cases):
        marker = os.urandom(8).hex()
        stream = _CaseStream(("\0" + marker + "\0").encode())
        started = time.monotonic()
        timed_out, status = _run_child({**request, "cases": cases[len(replies):], "marker": marker}, stream)
        for i, reply in enumerate(stream.replies):
            reply["output"] = stream.outputs[i] if i < len(stream.outputs) else ""
            replies.append(reply)
        if len(replies) == len(cases):
            break
        if timed_out:
            failed = {"status": "timeout", "message": f"did not finish within {float(request.get('time_limit', 20)):g} s"}
        elif stream.malformed:
            failed = {"status": "error", "kind": "malformed", "message": stream.malformed}
        else:
            failed = _death_reply(status)
        failed.update(output=stream.rest_of_output(), seconds=time.monotonic() - started)
        replies.append(failed)
    return replies


def _collapse_to_huge_pages() -> None:
    """Back the server's anonymous memory (~150 MB after `import torch`) with 2 MB pages, best effort.

    A fork copies one page-table entry per 4 KB page: ~13 ms here for a torch-loaded process, paid for
    every exercise. With huge pages the same fork costs ~3 ms. MADV_COLLAPSE needs Linux >= 6.1;
    elsewhere this does nothing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madv_hugepage, madv_collapse, huge = 14, 25, 2 << 20
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except (OSError, AttributeError):
        return
    for fields in regions:
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        if "rw" not in fields[1] or name not in ("", "[heap]"):
            continue  # anonymous writable memory only: file-backed pages are not copied on fork
        start, end = (lo + huge - 1) & ~(huge - 1), hi & ~(huge - 1)
        if end - start >= huge:
            libc.madvise(start, end - start, madv_hugepage)
            libc.madvise(start, end - start, madv_collapse)


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
    prepare()  # PyTorch's backward kernels refuse in every child (~25 ms, once here rather than per fork)
    _collapse_to_huge_pages()
    wire.send(proto_out, {"status": "ready", "pid": os.getpid()})
    while True:
        try:
            request = wire.recv(proto_in)
        except ValueError:
            return
        if request is None:
            return
        try:
            reply = {"status": "ok", "replies": run_cases(request)}
        except Exception as exc:  # a bug of ours: report it, keep serving
            reply = {"status": "error", "kind": "internal", "message": f"grader worker failed: {exc!r}"}
        wire.send(proto_out, reply)


if __name__ == "__main__":
    serve()
