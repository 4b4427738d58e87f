"""The fork-server client: `Runner` starts the server (python -m autograder.runtime.worker) under the chosen
mechanism, sends it one group of cases at a time and reads each child's replies and output from pipes,
every wait with a deadline; `credit_runner` is the runner fit to grade for credit.

The runner trusts nothing from the child: every wait has a deadline, every reply is validated before a
judge sees it (replies.py), and every string that comes back is stripped of terminal control sequences.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder.runtime import landlock, wire
from autograder.sandbox import policy
from autograder.sandbox.mechanisms import (_LIVE_SERVERS, DEFAULT_SANDBOX_USER, SANDBOX_USER_ENV, IsolationMissing,
                                           _bwrap_argv, _clean_uid, _disown, _reap_strays, _set_subreaper,
                                           choose_mechanism, claim_uid)
from autograder.sandbox.replies import RunResult, _death_result, _to_result, plain, stack_at_timeout
from autograder.sandbox.staging import Staging

STARTUP_TIMEOUT = float(os.environ.get("AUTOGRADER_STARTUP_TIMEOUT", "120"))  # torch import, busy machine
CONTROL_TIMEOUT = 5.0                 # the server's answer to one control message
MAX_PROCESSES = 256                   # RLIMIT_NPROC of a child (per uid: the sandbox's own)
OUTPUT_LIMIT = 64 * 1024              # bytes of a case's printed output kept for the report
# After a timeout in a file, that file's later groups (other exercises calling the same hanging helper) get a
# quarter of their limit, at least this: one endless loop costs the submission one full wait, not one each.
SHORTENED_LIMIT_MIN = 5.0


class _ServerGone(Exception):
    """The fork server died, stopped answering or said something it should not."""


class Runner:
    """One fork server; `run_cases()` is thread-safe (one group of cases at a time). The server is
    restarted when a case killed or stopped it, so one submission's damage never reaches the next case."""

    def __init__(self, sandbox: str | None = None, *, protect=()):
        self.mechanism = choose_mechanism(None if sandbox in (None, "auto") else sandbox, protect)
        self._uid_lock = None
        if self.mechanism.name == "user":  # a uid of its own for as long as this runner lives
            self.mechanism, self._uid_lock = claim_uid(self.mechanism, tuple(protect))
        self.restarts = 0                 # servers replaced because one could not be verified clean
        self.sandbox = self.mechanism.description
        self.isolated = self.mechanism.isolated
        self._protect = tuple(protect)
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._ready = False
        self._lock = threading.Lock()
        self._staging = Staging(self.mechanism.name)   # the private directory the sandbox sees
        self._staged_key = ""                          # the fingerprint of the submission staged last
        self._timed_out: set[tuple[str, str]] = set()   # (staged submission, module) that timed out

    # -- the server --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server now (it imports torch in the background while the grader computes truths)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close_server()
        home = self._staging.prepare()
        kind = getattr(socket, "SOCK_SEQPACKET", None) if sys.platform.startswith("linux") else None
        ours, theirs = socket.socketpair(socket.AF_UNIX, kind or socket.SOCK_STREAM)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
               policy.POLICY_ENV: policy.policy_json()}  # the seccomp allowlist every child installs
        argv = [sys.executable, "-s", "-B", "-m", "autograder.runtime.worker", str(theirs.fileno())]
        kwargs = {}
        if self.mechanism.name == "bwrap":
            env.update(HOME="/tmp", TMPDIR="/tmp", AUTOGRADER_SCRATCH="/tmp", AUTOGRADER_SHARED_TMP="1")
            argv = _bwrap_argv(home, self._protect) + argv
            cwd = "/"
        else:
            # A scratch directory no earlier server had (a random name; the last one removed), so nothing a
            # replaced server's children left can be found by the next one's.
            for old in home.glob("scratch-*"):
                _disown(str(old)) if self.mechanism.name == "user" else shutil.rmtree(old, ignore_errors=True)
            scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=home))
            env.update(HOME=str(scratch), TMPDIR=str(scratch), AUTOGRADER_SCRATCH=str(scratch))
            cwd = str(home / "runtime")
            if self.mechanism.name == "user":
                if landlock.abi():  # each child reaches only the runtime, its submission and its scratch
                    env[landlock.ENV] = "1"
                os.chmod(scratch, 0o700)
                os.chown(scratch, self.mechanism.uid, self.mechanism.gid)
                _clean_uid(self.mechanism.uid)  # the uid is ours alone: nothing of it may be left
                env["AUTOGRADER_SHARED_TMP"] = "1"
                kwargs = dict(user=self.mechanism.uid, group=self.mechanism.gid, extra_groups=[], umask=0o077)
                _set_subreaper()
        try:
            debug = None if os.environ.get("AUTOGRADER_DEBUG") else subprocess.DEVNULL
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=debug, stderr=debug, env=env, cwd=cwd, pass_fds=(theirs.fileno(),),
                                          start_new_session=True, **kwargs)
        finally:
            theirs.close()
        _LIVE_SERVERS.add(self._proc.pid)
        self._sock = ours
        self._ready = False

    def _wait_ready(self) -> None:
        if not self._ready:
            hello = self._control_recv(STARTUP_TIMEOUT)
            if hello.get("op") != "ready":
                raise _ServerGone("the grading worker failed to start")
            if hello.get("dirt"):  # its sandbox is not as a fresh one must be: never run code there
                self.close_server()
                raise _ServerGone(f"the sandbox did not start clean: {str(hello['dirt'])[:200]}")
            self._ready = True

    def _control_recv(self, timeout: float) -> dict:
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            raise _ServerGone("the grading worker stopped answering")
        deadline = time.monotonic() + timeout
        data = b""
        # A stream socket (no SOCK_SEQPACKET, e.g. macOS) may deliver a frame in pieces: read to its end.
        while len(data) < 8 or len(data) < 8 + int.from_bytes(data[:8], "little") <= 65536:
            if data and not select.select([self._sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise _ServerGone("the grading worker stopped answering")
            try:
                more = self._sock.recv(65536)
            except OSError as exc:
                raise _ServerGone(f"the grading worker's channel failed ({exc})") from None
            if not more:
                raise _ServerGone("the grading worker ended")
            data += more
        try:
            return wire.unframe(data, 65536)
        except ValueError as exc:
            raise _ServerGone(f"the grading worker sent a malformed message ({exc})") from None

    def _control(self, message: dict, fds=(), timeout: float = CONTROL_TIMEOUT) -> dict:
        try:
            if fds:
                socket.send_fds(self._sock, [wire.frame(message)], list(fds))
            else:
                self._sock.sendall(wire.frame(message))
        except OSError as exc:
            raise _ServerGone(f"the grading worker's channel failed ({exc})") from None
        return self._control_recv(timeout)

    # -- running cases -----------------------------------------------------------------------------------

    def run(self, submission: Path, module: str, driver: str, inputs: dict, **limits) -> RunResult:
        """One case."""
        return self.run_cases(submission, module, driver, [inputs], **limits)[0]

    def run_cases(self, submission: Path, module: str, driver: str, cases: list[dict], *, time_limit: float,
                  memory_mb: int, blocked_imports=(), blocked_why: str = "",
                  forbid_autograd: bool = False) -> list[RunResult]:
        """The cases of one group (never mix public and hidden cases in one call), in one student process;
        a fresh one after a case that killed it or timed out. `time_limit` is per case, wall clock."""
        with self._lock:
            try:
                self._staging.prepare()
                self._staged_key, root, fresh = self._staging.submission(submission)
                if fresh:
                    self._timed_out.clear()  # another submission: its own budget
                driver_file, function = self._staging.driver(driver)
            except (OSError, ValueError) as exc:
                failed = RunResult("error", kind="internal", message=plain(f"cannot prepare this run: {exc}", 300))
                return [failed] * len(cases)
            shortened = ""
            if (self._staged_key, module) in self._timed_out and time_limit > SHORTENED_LIMIT_MIN:
                time_limit = max(SHORTENED_LIMIT_MIN, time_limit / 4)
                shortened = " (shortened: an earlier exercise of this file timed out)"
            request = {"submission": root, "module": module, "driver_file": driver_file, "driver": function,
                       "time_limit": time_limit, "memory_mb": memory_mb, "blocked_imports": list(blocked_imports),
                       "blocked_why": blocked_why, "forbid_autograd": forbid_autograd,
                       "max_processes": MAX_PROCESSES if self.mechanism.name != "none" else 0}
            encoded = [wire.frame({"inputs": wire.encode(inputs)}) for inputs in cases]
            results: list[RunResult] = []
            restarts = 0
            while len(results) < len(cases):
                got, fatal, started = self._run_group(request, encoded[len(results):], time_limit)
                results += got
                if fatal is not None and not started:  # the server failed before any student code ran
                    restarts += 1
                    if restarts > 2:  # it keeps failing: give up on the rest
                        results += [fatal] * (len(cases) - len(results))
                elif fatal is not None:
                    results.append(fatal)
                    if fatal.status == "timeout":  # the next case would most likely wait out its limit too
                        self._timed_out.add((self._staged_key, module))
                        fatal.message += shortened
                        rest = len(cases) - len(results)
                        results += [RunResult("timeout", message=f"not run: an earlier case timed out "
                                                                 f"({fatal.message})") for _ in range(rest)]
            if self.mechanism.name == "user":
                _reap_strays(self.mechanism.uid)
            return results[:len(cases)]

    def _run_group(self, request: dict, cases: list[bytes],
                   time_limit: float) -> tuple[list[RunResult], RunResult | None, bool]:
        """Run `cases` in one child until one fails fatally: (results so far, the fatal case's result or None,
        whether a child started at all)."""
        results: list[RunResult] = []
        marker = os.urandom(8).hex()
        case_r, case_w = os.pipe()
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        try:
            self._ensure_started()
            self._wait_ready()
            answer = self._control({"op": "run", "request": {**request, "marker": marker}},
                                   fds=(case_r, result_w, output_w))
            if answer.get("op") != "started":
                raise _ServerGone(str(answer.get("message", "the grading worker refused the run"))[:200])
        except _ServerGone as exc:
            for fd in (case_r, case_w, result_r, result_w, output_r, output_w):
                os.close(fd)
            self.close_server()
            return results, RunResult("error", kind="server", message=plain(
                f"the grading process failed before running this code ({exc})", 300)), False
        for fd in (case_r, result_w, output_w):
            os.close(fd)
        stream = _Stream(marker.encode(), result_r, output_r)
        fatal = None
        kill = False
        try:
            for body in cases:
                started = time.monotonic()
                reply = stream.exchange(case_w, body, len(results), started + time_limit)
                if reply is None:  # no reply: it timed out, died or broke the protocol
                    kill = True
                    if stream.why == "timeout":
                        fatal = RunResult("timeout", message=f"did not finish within {time_limit:g} s")
                    elif stream.why:
                        fatal = RunResult("error", kind="malformed", message=plain(stream.why, 300))
                    break
                result = _to_result(reply, stream.take_output())
                result.seconds = time.monotonic() - started
                results.append(result)
            os.close(case_w)
            case_w = -1
            if fatal is None and len(results) == len(cases):
                stream.drain(time.monotonic() + 0.5)
            try:
                ended = self._control({"op": "end", "kill": kill, "grace": 0.5})
                status = ended.get("status")
                if ended.get("op") != "ended" or ended.get("dirt", "?"):
                    # Not verified clean (a permission changed, something left behind or unremovable, the
                    # server's limits touched): a fresh server for whatever runs next, this submission's
                    # later exercises (the cost falls on it) or the next submission.
                    self.restarts += 1
                    self.close_server()
            except _ServerGone as exc:
                self.close_server()
                status = None
                if fatal is None and len(results) < len(cases):
                    fatal = RunResult("error", kind="server", message=plain(
                        f"the grading process was killed while running this code ({exc})", 300))
            if fatal is None and len(results) < len(cases):
                fatal = _death_result(status)
            if fatal is not None:
                fatal.output = plain(stream.rest_of_output())
                if fatal.kind in ("", "crash"):  # a timeout or a fatal signal: the stack the child printed
                    fatal.where, fatal.output = stack_at_timeout(fatal.output, request.get("submission", ""))
        finally:
            if case_w >= 0:
                os.close(case_w)
            stream.close()
        return results, fatal, True

    # -- closing -----------------------------------------------------------------------------------------

    def close_server(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self._proc.kill()
                self._proc.wait(timeout=10)
            except Exception:
                pass
            _LIVE_SERVERS.discard(self._proc.pid)
            if self.mechanism.name == "user":
                _reap_strays(self.mechanism.uid)
                _clean_uid(self.mechanism.uid)
            self._proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._ready = False

    def close(self) -> None:
        self.close_server()
        self._staging.remove()
        if self._uid_lock is not None:
            self._uid_lock.close()
            self._uid_lock = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Stream:
    """One child's result and output pipes, read with deadlines; output split per case at the marker."""

    def __init__(self, marker: bytes, result_fd: int, output_fd: int):
        self.marker = b"\0" + marker + b"\0"
        self.result_fd, self.output_fd = result_fd, output_fd
        self.results = bytearray()
        self.output = bytearray()
        self.outputs: list[bytes] = []
        self.open = {result_fd, output_fd}
        self.why = ""

    def exchange(self, case_fd: int, body: bytes, index: int, deadline: float) -> dict | None:
        """Write one case to the child, then wait for its reply until `deadline`. None (and `why`) if none came."""
        os.set_blocking(case_fd, False)
        view = memoryview(body)
        while True:
            if view:
                writable = [case_fd]
            else:
                writable = []
                reply = self._next_reply(index)
                if reply is not None or self.why:
                    return reply
                if self.result_fd not in self.open:
                    return None  # the child ended without replying
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.why = "timeout"
                return None
            readable, ready_w, _ = select.select(list(self.open), writable, [], remaining)
            if ready_w:
                try:
                    view = view[os.write(case_fd, view):]
                except BlockingIOError:
                    pass
                except OSError:  # the child closed its case pipe: it is gone
                    view = view[len(view):]
            for fd in readable:
                self._read(fd)
            if self.why or (view and self.result_fd not in self.open):
                return None

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.open.discard(fd)
        elif fd == self.output_fd:
            self.output.extend(chunk)
            while (at := self.output.find(self.marker)) >= 0:
                self.outputs.append(bytes(self.output[:at]))
                del self.output[:at + len(self.marker)]
            if len(self.output) > 4 * OUTPUT_LIMIT:  # keep the head; the marker may still come
                self.output[:] = self.output[:OUTPUT_LIMIT] + b"\n[output truncated]\n" + self.output[-len(self.marker):]
        else:
            self.results.extend(chunk)
            if len(self.results) > wire.MAX_MESSAGE + 8:
                self.why = "sent a reply larger than the limit"

    def _next_reply(self, index: int) -> dict | None:
        if len(self.results) < 8:
            return None
        size = int.from_bytes(self.results[:8], "little")
        if size > wire.MAX_MESSAGE:
            self.why = "sent a reply larger than the limit"
            return None
        if len(self.results) < 8 + size:
            return None
        data = bytes(self.results[:8 + size])
        del self.results[:8 + size]
        try:
            reply = wire.unframe(data)
        except ValueError as exc:
            self.why = f"sent a malformed result ({exc})"
            return None
        if reply.get("case", index) != index:
            self.why = "sent a result for another case"
            return None
        return reply

    def take_output(self) -> str:
        if self.outputs:
            return _capped(self.outputs.pop(0))
        return ""

    def drain(self, deadline: float) -> None:
        """The output still in flight after the last reply (bounded: something left behind may hold the pipe)."""
        while self.output_fd in self.open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([self.output_fd], [], [], remaining)
            if readable:
                self._read(self.output_fd)

    def rest_of_output(self) -> str:
        self.drain(time.monotonic() + 0.2)
        return _capped(b"".join(self.outputs) + bytes(self.output))

    def close(self) -> None:
        for fd in (self.result_fd, self.output_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _capped(raw: bytes) -> str:
    text = plain(raw[:OUTPUT_LIMIT].decode("utf-8", "replace"))
    return text + "\n[output truncated]" if len(raw) > OUTPUT_LIMIT else text


def credit_runner(unsandboxed: bool = False, *, protect=()) -> Runner:
    """A runner fit to grade for credit: it refuses (IsolationMissing, naming what to install) where no real
    isolation mechanism works, unless the operator said `--unsandboxed` (and every result then says so).
    `protect`: more paths (the results directory, the secret's file) the student's code must not reach."""
    runner = Runner(protect=protect)
    if not runner.isolated:
        if not unsandboxed:
            raise IsolationMissing(
                f"no isolation for the student's code on this machine ({runner.mechanism.problem}). Install "
                "bubblewrap (`apt-get install bubblewrap`), or run as root with a dedicated unprivileged user "
                f"({SANDBOX_USER_ENV}, default {DEFAULT_SANDBOX_USER}; see the README), or pass --unsandboxed "
                "to grade without isolation")
        runner.sandbox = f"{runner.sandbox}; --unsandboxed: graded without isolation"
    return runner
