"""The student's side: a fork server that runs the student's code in forked children.

`python -m autograder.runtime.worker <control fd>` is started by `runner.Runner` inside the sandbox, from a private
copy of the student's-process runtime (this file, wire.py, verdicts.py, guard.py): nothing else of the
grader is importable here. It imports torch once (the expensive part), then serves requests on the control
socket. A request names the submission copy, one driver file and the limits, and carries three pipes by
SCM_RIGHTS; the server forks one child on them and never reads a case itself: the grader writes the
inputs of one case at a time straight into the child's case pipe, and reads its replies and output
straight from the other two. So the server's memory, which every later child inherits, never holds case
inputs, and a child holds only the case it is running (plus those it already ran in the same group).

The server never runs a parallel torch op, so forked children can use torch safely (GNU OpenMP hangs in a
child forked after the parent used its thread pool); children use one thread anyway.

The child is disposable: whatever it prints, patches, raises or exits with ends with it.
"""
from __future__ import annotations

import ctypes
import faulthandler
import fcntl
import gc
import importlib.util
import io
import os
import resource
import select
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback

from . import landlock, seccomp, wire
from .guard import AutogradUsed, BlockedImport, _autograd_calls, after_case, arm, block_imports, disarm, install
from .libc import LIBC

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
CONTROL_MAX = 64 * 1024          # bytes of one control message
CASE_FD, RESULT_FD = 4, 3        # in the child: the case pipe (read) and the result pipe (write)


def _prctl(option: int, value: int) -> None:
    try:
        LIBC.prctl(option, value, 0, 0, 0)  # the server's handle, inherited: nothing to open per child
    except Exception:  # not Linux: best effort
        pass


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
        return {"status": "error", "kind": "exit", "message": f"called sys.exit({exc.code!r})"[:300], "where": where}
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
            "exception": type(exc).__name__[:80], "where": where}


def _reset_random_state() -> None:
    """Every case starts from the same random state, whatever the cases before it drew."""
    import random
    random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        # The CPU generator alone: `torch.manual_seed` also queues a seeding for each accelerator this process
        # never initialises, each with a formatted stack (~15 ms per case, and a list that grows per case).
        torch.default_generator.manual_seed(0)
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed(0)


_DRIVERS: dict[str, object] = {}


def _load_driver(path: str):
    """A driver file, loaded by file under a private name (never through its package)."""
    if path not in _DRIVERS:
        name = "_driver_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _DRIVERS[path] = module
    return _DRIVERS[path]


CPU_CAP = 600                    # s: the hard CPU limit of every child, whatever its group (hidden or public)


def _set_limits(request: dict) -> None:
    """The same limits in every child: nothing in them depends on the group (its size, public or hidden)."""
    memory = int(request.get("memory_mb", 2048)) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    cap = CPU_CAP if hard == resource.RLIM_INFINITY else min(CPU_CAP, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = int(request.get("file_size_mb", 64)) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    nproc = int(request.get("max_processes", 0))
    if nproc:  # counted per user: meaningful only for the sandbox's own uid
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _cpu_for_next_case(time_limit: float) -> None:
    """The soft CPU limit: what this process used so far plus one case's allowance (below the fixed cap), so
    each case gets the same allowance however many ran before it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + time_limit) + 2
    try:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))
    except (ValueError, OSError):  # the student's code lowered the hard limit: its own loss
        pass


# The seccomp allowlist (autograder/sandbox/policy.py, handed over in the environment at the server's start),
# built here once, in the server, which never loads it; each child installs it (`_confine`).
_SECCOMP = seccomp.prepare(os.environ.pop(seccomp.POLICY_ENV, None))


# Set by the runner where the sandbox shares the machine's filesystem (the dedicated user) and the kernel has
# Landlock: each child then reaches only the runtime, its submission and its scratch (runtime/landlock.py).
_LANDLOCK = os.environ.pop(landlock.ENV, "") == "1"


def _confine() -> bool:
    """Install the seccomp allowlist on this process: everything it does not list fails with EPERM. A fork bomb
    is then impossible rather than limited (threads stay bounded by the address-space limit), the student's
    code can signal nothing but itself, and it has no network. False where it cannot be installed (no
    libseccomp or no seccomp: the process limit, where it applies, holds)."""
    return not seccomp.install(_SECCOMP)


def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: limits, import, then one case at a time from the case pipe, one reply each.
    Never returns."""
    started = time.perf_counter()
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setpgid(0, 0)
        # Out of the way first: the received descriptors may sit on the numbers they are moved to.
        case_fd, result_fd, output_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in fds)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.dup2(result_fd, RESULT_FD)
        os.dup2(case_fd, CASE_FD)
        # Only these stay open: the server's control socket is not the student's to talk on.
        os.closerange(CASE_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True, errors="replace")
        sys.stderr = sys.stdout
        me = os.getpid()
        # A directory no other child ever had (a random name, as tempfile.mkdtemp makes, without its setup).
        scratch = os.path.join(request["scratch"], "case-" + os.urandom(12).hex())
        os.mkdir(scratch, 0o700)
        os.chdir(scratch)
        os.environ.update(HOME=scratch, TMPDIR=scratch)
        tempfile.tempdir = scratch
        _set_limits(request)
        import torch
        torch.set_num_threads(1)
        root = request["submission"]
        driver = getattr(_load_driver(request["driver_file"]), request["driver"])
        sys.path.insert(0, root)
        sys.setrecursionlimit(int(request.get("recursion_limit", 1000) or 1000))
        faulthandler.enable(file=sys.stdout)  # a fatal signal (a crash) prints the stack: the runner names the line
        if _LANDLOCK:  # fails closed: an error reply, never the student's code with the shared places open
            landlock.restrict(read=[root, os.path.dirname(request["driver_file"])], write=[request["scratch"]])
        _confine()  # before the guard: its audit hook refuses ctypes, which installing the filter uses
        blocked = request.get("blocked_imports") or []
        # The guard came installed from the server (`serve`): armed here, after this process's own native
        # code (seccomp) and before any of the student's; or taken off where the exercise allows autograd.
        if request.get("forbid_autograd") or "torch" in blocked:  # torch is in memory even where it is refused
            arm()
        else:
            disarm()
        if blocked:
            block_imports(blocked, request.get("blocked_why", "not allowed in this exercise"))
        marker = ("\0" + request["marker"] + "\0").encode()
        cases_in = os.fdopen(CASE_FD, "rb")
        out = os.fdopen(RESULT_FD, "wb")
        module, import_error = None, None
        try:
            module = importlib.import_module(request["module"])
        except BaseException as exc:  # noqa: a broken module fails every case the same way
            import_error = _reply_for_exception(exc, root)
        index = 0
        time_limit = float(request.get("time_limit", 20))
        # From the fork to the first case, wall and CPU (benchmarks/isolation.py prints them).
        setup = {"setup_seconds": round(time.perf_counter() - started, 6), "setup_cpu": round(time.process_time(), 6)}
        while True:
            message = wire.recv(cases_in)
            if message is None:
                break
            case_inputs = wire.decode(message["inputs"])
            _reset_random_state()
            del _autograd_calls[:]
            if import_error:
                reply = dict(import_error)
            else:
                # Shortly before the grader's deadline, the stack goes to the output: a timeout then says where
                # the student's code was (a C thread of faulthandler's: it works in an endless loop too).
                _cpu_for_next_case(time_limit)
                faulthandler.dump_traceback_later(max(0.2, time_limit - min(1.0, 0.1 * time_limit)), file=sys.stdout)
                try:
                    reply = {"status": "ok", "outputs": wire.encode(driver(module, case_inputs))}
                except BaseException as exc:  # noqa: everything the student's code does ends here
                    reply = _reply_for_exception(exc, root)
                finally:
                    faulthandler.cancel_dump_traceback_later()
            if os.getpid() != me:  # a copy the student's code forked: it is no case runner
                os._exit(0)
            del case_inputs, message
            reply["case"] = index
            if index == 0:
                reply.update(setup)
            if after_case():  # the guards intact, and what was found at import
                reply["autograd_calls"] = sorted(set(_autograd_calls))
            try:
                sys.stdout.flush()
            except BaseException:
                pass
            os.write(1, marker)
            wire.send(out, reply)
            index += 1
    except BaseException as exc:  # the reply itself failed (e.g. unencodable output, memory)
        try:
            with os.fdopen(os.dup(RESULT_FD), "wb") as out:
                wire.send(out, {"status": "error", "kind": "internal",
                            "message": f"the student's process failed outside the student's code: {exc!r}"[:300]})
        except BaseException:
            pass
    finally:
        os._exit(0)


def _children() -> list[int]:
    """This process's children: from /proc/self/task/*/children where the kernel has it (cheap), else by
    reading every process's parent (a scan of the whole machine's /proc without a pid namespace)."""
    try:
        out = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                out += [int(pid) for pid in f.read().split()]
        return out
    except (OSError, ValueError):
        pass
    me = str(os.getpid())
    out = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if stat.rsplit(")", 1)[1].split()[1] == me:
                out.append(int(pid))
        except (OSError, IndexError):
            continue
    return out


def _reap_orphans() -> None:
    """Kill whatever a child left behind (we are a subreaper, so orphans are re-parented to us)."""
    for _ in range(3):
        pids = _children()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass


SHARED_PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock")
MAX_WIPE_DEPTH = 256             # a deeper tree than this left by a child: not wiped, the server is replaced


def _force_remove(path: str, depth: int = 0) -> None:
    """Remove `path` whatever modes the child left on it (a directory made 0o000 or read-only is made ours
    again first; this process has the child's uid). Leaves what it cannot remove: `_dirt` then finds it."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    if depth > MAX_WIPE_DEPTH:
        return
    try:
        os.chmod(path, 0o700)
        entries = os.listdir(path)
    except OSError:
        entries = []
    for entry in entries:
        _force_remove(os.path.join(path, entry), depth + 1)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _owned_in_shared_places(scratch: str) -> list[str]:
    """What this uid owns in the machine's shared temporary directories (its scratch aside)."""
    me, found = os.getuid(), []
    for place in SHARED_PLACES:
        try:
            entries = os.listdir(place)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(place, entry)
            try:
                if os.lstat(path).st_uid == me and os.path.realpath(path) != os.path.realpath(scratch):
                    found.append(path)
            except OSError:
                continue
    return found


def _wipe(scratch: str, shared_tmp: bool) -> None:
    """Remove everything the last child could have written: its scratch's contents and, where this uid is the
    sandbox's own, whatever it left in the machine's shared temporary directories."""
    try:
        os.chmod(scratch, SCRATCH_STATE["mode"] if SCRATCH_STATE else 0o700)
    except OSError:
        pass
    try:
        entries = os.listdir(scratch)
    except OSError:
        entries = []
    for entry in entries:
        _force_remove(os.path.join(scratch, entry))
    if shared_tmp:
        for path in _owned_in_shared_places(scratch):
            _force_remove(path)


SCRATCH_STATE: dict = {}         # the scratch directory's mode and owner as the server found it


def _own_state() -> dict:
    """What of this server a child of the same uid might try to change, to be compared after each child."""
    state = {"rlimits": {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource)
                         if name.startswith("RLIMIT_")},
             "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    if hasattr(os, "sched_getaffinity"):
        state["affinity"] = sorted(os.sched_getaffinity(0))
    return state


def _processes_of_my_uid() -> list[int]:
    """Every process of this uid but this server (the sandbox's uid is this server's alone)."""
    me, uid, found = os.getpid(), os.getuid(), []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                found.append(pid)
        except OSError:
            continue
    return found


def _sysv_objects() -> list[str]:
    """System V IPC objects (shared memory, semaphores, queues) of this uid: they outlive their creator."""
    uid, found = str(os.getuid()), []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
        except (OSError, ValueError):
            continue
        column = header.split().index("uid") if "uid" in header.split() else None
        for row in rows:
            fields = row.split()
            if column is not None and len(fields) > column and fields[column] == uid:
                found.append(f"a System V {kind} object")
    return found


def _tree(scratch: str) -> set:
    """Every path under the scratch on its own filesystem. Where the runtime lives under /tmp (a checkout
    there), bubblewrap's directories and mount points for it are in the scratch from the start: they are the
    baseline, not dirt, and the mounts' (read-only) contents are not walked."""
    root = os.lstat(scratch).st_dev
    found = set()
    for dirpath, dirnames, filenames in os.walk(scratch):
        keep = []
        for name in dirnames:
            path = os.path.join(dirpath, name)
            found.add(path)
            try:
                if os.lstat(path).st_dev == root:
                    keep.append(name)
            except OSError:
                pass
        dirnames[:] = keep
        found.update(os.path.join(dirpath, name) for name in filenames)
    return found


def _dirt(scratch: str, shared_tmp: bool, baseline: dict) -> str:
    """'' when nothing of the last child is left (the state the next child, maybe the next submission's,
    would start from is the server's first one); else the first thing that is not, named."""
    try:
        st = os.lstat(scratch)
        if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != (SCRATCH_STATE["mode"], SCRATCH_STATE["uid"],
                                                                 SCRATCH_STATE["gid"]):
            return f"the scratch directory's mode or owner changed ({oct(stat.S_IMODE(st.st_mode))})"
        if _tree(scratch) != SCRATCH_STATE.get("tree", set()):
            return "the scratch directory could not be emptied"
    except OSError as exc:
        return f"the scratch directory is unreadable ({exc.strerror})"
    if _children():
        return "a process was left running"
    if shared_tmp:  # this uid is the sandbox's own (not a student's laptop account): all it owns is the child's
        if left := [p for p in _owned_in_shared_places(scratch) if p not in SCRATCH_STATE.get("tree", ())]:
            return f"{left[0]} could not be removed"
        if left := _sysv_objects():
            return f"{left[0]} was left behind"
        if _processes_of_my_uid():
            return "a process was left running"
    now = _own_state()
    for key in baseline:
        if now.get(key) != baseline[key]:
            return f"the server's {key} changed"
    return ""


def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall(wire.frame(message))


def _recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, CONTROL_MAX, 4)
    if not data:
        return None, fds
    # A stream socket (where there is no SOCK_SEQPACKET, e.g. macOS) may deliver a frame in pieces.
    while len(data) < 8 or len(data) < 8 + int.from_bytes(data[:8], "little") <= CONTROL_MAX:
        more = sock.recv(CONTROL_MAX)
        if not more:
            return None, fds
        data += more
    return wire.unframe(data, CONTROL_MAX), fds


def _end_child(pid: int, kill: bool, grace: float) -> tuple[int, float]:
    """Wait for the child to end (up to `grace` s unless `kill`), kill it and its group otherwise: its wait
    status, and the CPU seconds it used."""
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if not done and not kill:
        done, status, usage = _wait_for_exit(pid, grace)
    if not done:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
        _, status, usage = os.wait4(pid, 0)
    return status, usage.ru_utime + usage.ru_stime


def _wait_for_exit(pid: int, grace: float) -> tuple:
    """`os.wait4(pid, WNOHANG)` once the child `pid` has ended or `grace` s passed: woken by its exit where the
    kernel has pidfds (a sleep-and-poll loop added up to 5 ms to every child), else polled."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            select.select([pidfd], [], [], grace)
        finally:
            os.close(pidfd)
        return os.wait4(pid, os.WNOHANG)
    deadline = time.monotonic() + grace
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done or time.monotonic() >= deadline:
            return done, status, usage
        time.sleep(0.005)


def _collapse_to_huge_pages() -> None:
    """Back the server's anonymous memory (~150 MB after `import torch`) with 2 MB pages, best effort.

    A fork copies one page-table entry per 4 KB page: ~13 ms here for a torch-loaded process, paid for
    every exercise. With huge pages the same fork costs ~3 ms. MADV_COLLAPSE needs Linux >= 6.1;
    elsewhere this does nothing. It takes 0.2-0.3 s, so it runs on a thread of its own while the server
    already serves (`serve`), one 2 MB range per call: a fork, which needs the memory map's lock, waits for
    one range at most, and a child forked before the end only pays for the pages not yet collapsed.
    """
    try:
        libc = LIBC
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
            for chunk in range(start, end, huge):
                libc.madvise(chunk, huge, madv_collapse)



def _only_standard_imports() -> None:
    """Forget import hooks that site-packages installed (an editable install's finder maps `autograder` to
    the grader's checkout): only the runtime copy on sys.path[0] and the interpreter's own paths remain."""
    standard = ("_frozen_importlib", "_frozen_importlib_external", "zipimport")
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__module__", "") in standard]
    sys.path_hooks[:] = [h for h in sys.path_hooks if getattr(h, "__module__", "") in standard]
    sys.path_importer_cache.clear()
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    sys.path.insert(0, os.getcwd())  # the runtime copy (the runner starts us there)
    for name in [m for m in sys.modules if m.startswith("__editable__")]:
        del sys.modules[name]


def serve(control_fd: int) -> None:
    sock = socket.socket(fileno=control_fd)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader died: so do we
    _prctl(PR_SET_DUMPABLE, 0)  # a child (same uid) may not read or write our memory through /proc
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to us, to be killed
    os.umask(0o077)
    sys.stdout = sys.stderr  # anything printed goes to stderr (discarded by the grader)
    _only_standard_imports()
    if _LANDLOCK:
        landlock.prepare()  # the import path is final now
    import numpy  # noqa: F401
    import torch  # noqa: F401  preloaded once: every forked child starts warm
    # The autograd guard, dormant, and PyTorch's backward kernels refused: once here (~45 ms) rather than
    # in every child, which only arms it (guard.install, guard.arm).
    install()
    threading.Thread(target=_collapse_to_huge_pages, name="huge-pages", daemon=True).start()
    scratch = os.environ.get("AUTOGRADER_SCRATCH") or tempfile.gettempdir()
    shared_tmp = os.environ.get("AUTOGRADER_SHARED_TMP") == "1"
    st = os.lstat(scratch)
    SCRATCH_STATE.update(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    baseline = _own_state()
    # A server that starts dirty (its uid's leftovers from elsewhere) says so before its first child.
    _wipe(scratch, shared_tmp)
    SCRATCH_STATE["tree"] = _tree(scratch)  # empty, but for the runtime's mount points (see _tree)
    # Everything loaded so far out of the collector's reach: a child's collections would otherwise visit (and
    # so copy, page by page) the server's objects it inherited. Not collected first: that took 0.1 s of every
    # server's start, to free the little garbage the imports left.
    gc.freeze()
    _send(sock, {"op": "ready", "pid": os.getpid(), "dirt": _dirt(scratch, shared_tmp, baseline)})
    child = 0
    while True:
        try:
            message, fds = _recv(sock)
        except (OSError, ValueError):
            return
        if message is None:
            return
        op = message.get("op")
        try:
            if op == "run" and len(fds) == 3 and not child:
                request = dict(message["request"], scratch=scratch)
                _load_driver(request["driver_file"])  # once per server, not per child
                forked, cpu = time.perf_counter(), time.process_time()
                child = os.fork()
                if child == 0:
                    sock.close()
                    _child(request, fds)
                forked, cpu = time.perf_counter() - forked, time.process_time() - cpu
                for fd in fds:
                    os.close(fd)
                _send(sock, {"op": "started", "seconds": {"fork": round(forked, 6), "fork_cpu": round(cpu, 6)}})
            elif op == "end" and child:
                clock, cpu = [time.perf_counter()], time.process_time()
                status, child_cpu = _end_child(child, bool(message.get("kill")), float(message.get("grace", 0.5)))
                child = 0
                clock.append(time.perf_counter())
                _reap_orphans()
                clock.append(time.perf_counter())
                _wipe(scratch, shared_tmp)
                clock.append(time.perf_counter())
                # Verified, not assumed: anything left means the runner replaces this server.
                dirt = _dirt(scratch, shared_tmp, baseline)
                clock.append(time.perf_counter())
                # Where the server's time went (benchmarks/isolation.py prints it; the runner ignores it).
                seconds = {name: round(b - a, 6) for name, a, b in zip(("exit", "reap", "wipe", "verify"), clock, clock[1:])}
                seconds.update(child_cpu=round(child_cpu, 6), end_cpu=round(time.process_time() - cpu, 6))
                _send(sock, {"op": "ended", "status": status, "dirt": dirt, "seconds": seconds})
            else:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"op": "error", "message": f"unexpected request {op!r}"})
        except Exception as exc:  # a bug of ours: report it, keep serving
            _send(sock, {"op": "error", "message": f"grader worker failed: {exc!r}"[:500]})


if __name__ == "__main__":
    serve(int(sys.argv[1]))
