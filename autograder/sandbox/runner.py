"""The grader's side of the student's process: start the fork server in the strongest sandbox available,
feed its children one case at a time, and turn whatever comes back (or does not) into a `RunResult`.

Mechanisms (AUTOGRADER_SANDBOX=auto|bwrap|user|none picks one; auto takes the first that works):
- bwrap: bubblewrap with all namespaces unshared (no network, own pid namespace), an unprivileged uid,
  and a filesystem of only: the Python runtime read-only, a private copy of the student's-process
  runtime and driver files, the submission's own copy (read-only), a private tmpfs /tmp, /dev, /proc.
- user: where user namespaces are unavailable (Docker, Gradescope) and the grader is root: the server
  runs as a dedicated unprivileged user (AUTOGRADER_SANDBOX_USER, default `backprop-student`), after the
  runner verified that user can neither read nor write the grader's files (`verify_user`).
- none: resource limits only (a student's laptop). `check` says so; grading for credit refuses it
  unless the operator passed --unsandboxed.

The runner trusts nothing from the child: every wait has a deadline, every reply is validated before a
judge sees it, and every string that comes back is stripped of terminal control sequences.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import importlib.util
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from autograder.runtime import wire

SANDBOX_ENV = "AUTOGRADER_SANDBOX"
SANDBOX_USER_ENV = "AUTOGRADER_SANDBOX_USER"
DEFAULT_SANDBOX_USER = "backprop-student"
PROTECT_ENV = "AUTOGRADER_PROTECT"   # more paths the sandbox user must not reach (os.pathsep-separated)
PACKAGE_DIR = Path(__file__).resolve().parent.parent   # autograder/
PACKAGE_ROOT = PACKAGE_DIR.parent
RUNTIME_DIR = PACKAGE_DIR / "runtime"
# The student's process runtime: every module of autograder/runtime/, copied as autograder/runtime/ (the same
# import path inside the sandbox as in the grader), and nothing else of the grader.
RUNTIME_FILES = tuple(sorted(p.name for p in RUNTIME_DIR.glob("*.py")))
SANDBOX_UID = 65534                   # the uid inside bubblewrap
INSIDE = "/sandbox"                   # where the runtime and the submission appear inside bubblewrap
STARTUP_TIMEOUT = float(os.environ.get("AUTOGRADER_STARTUP_TIMEOUT", "120"))  # torch import, busy machine
CONTROL_TIMEOUT = 5.0                 # the server's answer to one control message
MAX_PROCESSES = 256                   # RLIMIT_NPROC of a child (per uid: the sandbox's own)
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024
MAX_SUBMISSION_FILES = 2000
OUTPUT_LIMIT = 64 * 1024              # bytes of a case's printed output kept for the report
# After a timeout in a file, that file's later groups (other exercises calling the same hanging helper) get a
# quarter of their limit, at least this: one endless loop costs the submission one full wait, not one each.
SHORTENED_LIMIT_MIN = 5.0
SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".venv", "venv", "env", "__MACOSX",
             "node_modules", "site-packages", ".mypy_cache", ".tox",
             ".backprop-lab"}  # the student's own last result (history.py): not graded code

_LIVE_SERVERS: set[int] = set()       # pids of this process's fork servers (see _reap_strays)

# CSI / OSC / other escape sequences, then any remaining C0/C1 control character but tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text, limit: int | None = None) -> str:
    """`text` as plain characters: no ANSI escape sequence, no control character but newline and tab."""
    text = _CONTROLS.sub("", _ESCAPES.sub("", str(text).replace("\r\n", "\n")))
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


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


class IsolationMissing(RuntimeError):
    """Grading for credit was asked for on a machine with no isolation mechanism."""


# -- mechanisms -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mechanism:
    name: str            # bwrap | user | none
    description: str     # shown in every result
    isolated: bool       # fit for grading for credit
    uid: int = -1        # user mode: the sandbox user's ids
    gid: int = -1
    problem: str = ""    # why a stronger mechanism was not used


def _python_paths() -> list[str]:
    """What the interpreter needs, read-only: its prefixes and wherever torch and numpy live."""
    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    for name in ("torch", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            paths.add(os.path.dirname(os.path.realpath(list(spec.submodule_search_locations)[0])))
    out = []
    for path in sorted(paths, key=len):
        if not any(path == p or path.startswith(p + os.sep) for p in out):
            out.append(path)
    return out


def _hidden_paths(extra=()) -> list[str]:
    """The grader's files the student's process must never reach."""
    paths = [PACKAGE_DIR, PACKAGE_ROOT / "reference"]
    paths += [Path(p) for p in os.environ.get(PROTECT_ENV, "").split(os.pathsep) if p]
    paths += [Path(p) for p in extra if p]
    out = []
    for p in paths:
        real = os.path.realpath(p)
        if os.path.exists(real) and real not in out:
            out.append(real)
    return out


def _bwrap_argv(home: Path, protect=()) -> list[str]:
    bwrap = shutil.which("bwrap")
    # --as-pid-1: the server is the pid namespace's init, so its children can neither signal it (init takes
    # no signal it has no handler for) nor outlive it, and no other process of bwrap's shares the sandbox.
    argv = [bwrap, "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    # The private /tmp first: a runtime that lives under /tmp (a venv in a clone there) is bound over it.
    argv += ["--size", str(256 * 1024 * 1024), "--tmpfs", "/tmp"]
    bound = ["/usr"] + _python_paths()
    for path in bound:
        argv += ["--ro-bind", path, path]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime"):
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # Whatever of the grader lies under a bound path (a non-editable install in site-packages, a checkout
    # holding the venv) is covered up.
    for path in _hidden_paths(protect):
        if any(path == b or path.startswith(b + os.sep) for b in bound):
            argv += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    for site in _python_paths():
        grader_copy = os.path.join(site, "autograder")
        if os.path.isfile(os.path.join(grader_copy, "runtime", "worker.py")):
            argv += ["--tmpfs", grader_copy]
    argv += ["--ro-bind", str(home / "runtime"), f"{INSIDE}/runtime",
             "--ro-bind", str(home / "submission"), f"{INSIDE}/submission",
             "--dev", "/dev", "--proc", "/proc",
             # Nothing but /tmp (wiped after every child) is writable: what a child writes elsewhere would
             # outlive it, into the next case or the next submission.
             "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", f"{INSIDE}/runtime", "--"]
    return argv


@functools.lru_cache(maxsize=None)
def _bwrap_works() -> str:
    """'' when bubblewrap runs here, else why not."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    home = Path(tempfile.mkdtemp(prefix="autograder-probe-"))
    try:
        (home / "runtime").mkdir()
        (home / "submission").mkdir()
        done = subprocess.run(_bwrap_argv(home) + [sys.executable, "-I", "-S", "-c", ""],
                              capture_output=True, timeout=60, cwd="/")
        if done.returncode != 0:
            return "bubblewrap does not run here (" + (done.stderr.decode(errors="replace").strip()[:200]
                                                       or f"status {done.returncode}") + ")"
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap does not run here ({exc})"
    finally:
        shutil.rmtree(home, ignore_errors=True)


_PROBE = r"""
import json, os, sys
hidden, readonly = json.loads(sys.argv[1])
bad = []
for path in hidden:
    if any(os.access(path, m) for m in (os.R_OK, os.W_OK, os.X_OK)):
        bad.append([path, "readable" if os.access(path, os.R_OK) else "reachable"])
for path in readonly:
    if os.access(path, os.W_OK):
        bad.append([path, "writable"])
import importlib.util
for name in ("torch", "numpy"):  # the user must be able to run the runtime at all (found, not imported: fast)
    spec = importlib.util.find_spec(name)
    if spec is None or not os.access(spec.origin or "", os.R_OK):
        bad.append([sys.executable, f"cannot find {name} as this user"])
print(json.dumps(bad))
"""


def sandbox_user() -> str:
    return os.environ.get(SANDBOX_USER_ENV) or DEFAULT_SANDBOX_USER


def verify_user(name: str, protect=()) -> tuple[int, int, str]:
    """(uid, gid, problem): the dedicated user's ids and '' when it can reach none of the grader's files
    (and write none of the runtime's); else what is wrong, naming the path."""
    if os.geteuid() != 0:
        return -1, -1, "the grader is not root, so it cannot run the student's code as another user"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return -1, -1, f"no user {name!r} (create it: useradd --system --no-create-home {name})"
    return entry.pw_uid, entry.pw_gid, verify_ids(entry.pw_uid, entry.pw_gid, f"user {name!r}", tuple(protect))


@functools.lru_cache(maxsize=None)
def verify_ids(uid: int, gid: int, label: str, protect=()) -> str:
    """'' when a process with exactly these ids (no supplementary group) can reach none of the grader's files
    and write none of the runtime's, checked by running as them; else what is wrong, naming the path."""
    if uid == 0 or gid == 0:
        return f"{label} is privileged (uid or gid 0)"
    readonly = _python_paths()
    try:
        done = subprocess.run([sys.executable, "-s", "-B", "-c", _PROBE, json.dumps([_hidden_paths(protect), readonly])],
                              capture_output=True, timeout=120, cwd="/", user=uid, group=gid,
                              extra_groups=[], env={"PATH": "/usr/bin:/bin", "HOME": "/"})
        bad = json.loads(done.stdout or b"null")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"cannot run Python as {label} ({exc})"
    if not isinstance(bad, list):
        return f"cannot run Python as {label}: " + done.stderr.decode(errors="replace").strip()[-300:]
    if bad:
        path, what = bad[0]
        return f"{path} is {what} by {label}" + (
            " (chmod o-rwx it, or chown it away from that user)" if what != "writable" else "")
    return ""


# -- user mode: one uid per concurrent sandbox ------------------------------------------------------------
# Concurrent runners on one machine (grade-all's workers, two courses' nbgrader runs) must not share a uid:
# a uid's processes can signal each other and its files in /tmp are each other's. Each runner holds one uid
# for its lifetime, claimed with an flock'd lock file in a root-only directory: first the named user's, then
# unnamed uids of a reserved range (no passwd or group entry: no file on the machine is theirs). Each is
# verified like the named user, as itself.
SANDBOX_UIDS_ENV = "AUTOGRADER_SANDBOX_UIDS"      # "first-last": the unnamed uids (default below)
DEFAULT_SANDBOX_UIDS = (1_900_000_000, 1_900_000_063)
LOCK_DIRS = ("/run/autograder-sandbox", os.path.join(tempfile.gettempdir(), f"autograder-sandbox-{os.geteuid()}"))


def _lock_dir() -> str | None:
    """A directory only this (root) process's user can write: the lock files live there."""
    for path in LOCK_DIRS:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
                return path
        except OSError:
            continue
    return None


def _slot_uids(named_uid: int, named_gid: int) -> list[tuple[int, int]]:
    first, last = DEFAULT_SANDBOX_UIDS
    spec = os.environ.get(SANDBOX_UIDS_ENV, "")
    if spec:
        try:
            first, last = (int(x) for x in spec.split("-", 1))
        except ValueError:
            first, last = 1, 0  # unreadable: the named user only
    out = [(named_uid, named_gid)]
    for uid in range(max(first, 1), last + 1):
        try:
            pwd.getpwuid(uid)
            continue  # a real account: never run students' code as it
        except KeyError:
            pass
        try:
            import grp
            grp.getgrgid(uid)
            continue
        except (KeyError, ImportError):
            pass
        out.append((uid, uid))
    return out


def claim_uid(mechanism: Mechanism, protect=()) -> tuple[Mechanism, object | None]:
    """The user-mode `mechanism` with a uid no other runner on this machine holds, and the held lock (closed
    to release). Waits for the named user's uid when every slot is taken."""
    import fcntl
    where = _lock_dir()
    if where is None:
        return replace(mechanism, isolated=False, name="none",
                       description="none: not isolated (no root-only directory for the sandbox uids' locks)",
                       problem="no root-only directory for the sandbox uids' locks"), None
    slots = _slot_uids(mechanism.uid, mechanism.gid)
    for index, (uid, gid) in enumerate(slots + [slots[0]]):
        fd = os.open(os.path.join(where, f"uid-{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        lock = os.fdopen(fd, "r+")
        try:
            # The last try (the named user's again) waits: more concurrent runners than slots queue up.
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if index == len(slots) else fcntl.LOCK_NB))
        except OSError:
            lock.close()
            continue
        if uid != mechanism.uid and verify_ids(uid, gid, f"uid {uid}", tuple(protect)):
            lock.close()
            continue
        _clean_uid(uid)  # whatever an earlier holder (a killed grader) left behind
        if uid == mechanism.uid:
            return mechanism, lock
        return replace(mechanism, uid=uid, gid=gid, description=mechanism.description.replace(
            f"(uid {mechanism.uid};", f"(uid {uid}, one of its sandbox uids;")), lock
    raise AssertionError("unreachable: the last slot waits")


SHARED_PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock")


def _disown(path: str) -> None:
    """Remove `path` (as root); failing that, make it root's and unreachable."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except (OSError, RecursionError):
        try:
            os.lchown(path, 0, 0)
            if not os.path.islink(path):
                os.chmod(path, 0)
        except OSError:
            pass


def _clean_uid(uid: int) -> None:
    """As root, once this runner holds `uid`: end its processes and remove what it owns in the machine's
    shared temporary directories and its System V IPC objects. The uid is this runner's alone (claim_uid),
    so all of it is a sandbox's leftover."""
    if os.geteuid() != 0 or uid <= 0:
        return
    for _ in range(3):
        owner, parent = {}, {}
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                owner[int(pid)] = os.stat(f"/proc/{pid}").st_uid
                with open(f"/proc/{pid}/stat") as f:
                    parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue

        def leftover(pid: int, depth: int = 0) -> bool:
            """Ours or an orphan's (parent: this process, init, or another such process of the uid); not a
            process another grader started as this uid just now (verify_user's probe of the named user)."""
            ppid = parent.get(pid, 1)
            return ppid in (os.getpid(), 1, 0) or (depth < 64 and owner.get(ppid) == uid and leftover(ppid, depth + 1))
        pids = [pid for pid, who in owner.items() if who == uid and leftover(pid)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except (OSError, ChildProcessError):
                pass
    for place in SHARED_PLACES:
        try:
            entries = os.listdir(place)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(place, entry)
            try:
                if os.lstat(path).st_uid == uid:
                    _disown(path)
            except OSError:
                continue
    for kind, flag in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
            cols = header.split()
            for row in rows:
                fields = row.split()
                if fields[cols.index("uid")] == str(uid) and shutil.which("ipcrm"):
                    subprocess.run(["ipcrm", flag, fields[cols.index("shmid" if kind == "shm" else
                                                                     "semid" if kind == "sem" else "msqid")]],
                                   capture_output=True, timeout=10)
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            continue


def choose_mechanism(mode: str | None = None, protect=()) -> Mechanism:
    """The mechanism `mode` (default: $AUTOGRADER_SANDBOX, else auto) asks for, or `none` with the reason."""
    mode = (mode or os.environ.get(SANDBOX_ENV) or "auto").lower()
    if mode not in ("auto", "bwrap", "user", "none"):
        return Mechanism("none", f"none ({SANDBOX_ENV}={mode!r} is not auto, bwrap, user or none)", False,
                         problem=f"unknown {SANDBOX_ENV}={mode!r}")
    if mode == "none":
        return Mechanism("none", f"none: not isolated ({SANDBOX_ENV}=none); resource limits only", False,
                         problem=f"{SANDBOX_ENV}=none")
    problems = []
    if mode in ("auto", "bwrap"):
        why = _bwrap_works()
        if not why:
            return Mechanism("bwrap", "bubblewrap (own filesystem view, no network, own pid namespace, "
                                      "unprivileged uid)", True)
        problems.append(why)
    if mode in ("auto", "user") and (mode == "user" or os.geteuid() == 0):
        uid, gid, why = verify_user(sandbox_user(), protect)
        if not why:
            return Mechanism("user", f"dedicated user {sandbox_user()} (uid {uid}; the grader's files "
                                     "unreadable to it; sockets refused by seccomp)", True, uid=uid, gid=gid)
        problems.append(why)
    problem = "; ".join(problems) or "no isolation mechanism"
    return Mechanism("none", f"none: not isolated ({problem}); resource limits only", False, problem=problem)


# -- the runner -----------------------------------------------------------------------------------------

def _set_subreaper() -> None:
    """Orphans of a killed fork server come back to this process (user mode: no pid namespace to end them)."""
    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
    except Exception:
        pass


def _reap_strays(uid: int) -> None:
    """Kill our child processes running as `uid` that are no live fork server: what a student's code
    left behind when its server was killed (re-parented to us, the subreaper)."""
    me = str(os.getpid())
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
            if ppid != me or int(pid) in _LIVE_SERVERS or os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            os.kill(int(pid), signal.SIGKILL)
            os.waitpid(int(pid), 0)
        except (OSError, IndexError, ValueError, ChildProcessError):
            continue


def _driver_file(module_name: str) -> Path:
    """The file of a driver module, found without importing it (nor, where avoidable, its package)."""
    try:
        spec = importlib.util.find_spec(module_name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin)
    except (ImportError, ValueError):
        pass
    path = PACKAGE_ROOT.joinpath(*module_name.split(".")).with_suffix(".py")
    if path.is_file():
        return path
    raise ValueError(f"driver module {module_name} not found")


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256(str(root).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.exists(
            os.path.join(dirpath, d, "pyvenv.cfg")))
        for name in sorted(filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _copy_submission(source: Path, target: Path) -> None:
    """A read-only copy of the submission's regular files (links and caches skipped, size limited)."""
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not (here / d).is_symlink()
                             and not (here / d / "pyvenv.cfg").exists())  # a virtualenv, whatever its name
        dest = target / here.relative_to(source)
        dest.mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            st = os.lstat(here / name)
            if not stat.S_ISREG(st.st_mode):
                continue
            files, total = files + 1, total + st.st_size
            if files > MAX_SUBMISSION_FILES or total > MAX_SUBMISSION_BYTES:
                raise ValueError(f"the submission is larger than {MAX_SUBMISSION_FILES} files or "
                                 f"{MAX_SUBMISSION_BYTES // 2**20} MB")
            shutil.copyfile(here / name, dest / name, follow_symlinks=False)
            os.chmod(dest / name, 0o444)
    _compile_bytecode(target)
    for dirpath, _, _ in os.walk(target):
        os.chmod(dirpath, 0o555)


def _compile_bytecode(root: Path) -> None:
    """(speed) Each .py of the staged copy compiled once, here, into its `__pycache__`: every student process
    of the submission (12-14) then loads the bytecode instead of compiling the source again (5-10 ms per file
    and per process). Compiling runs none of the student's code (the pipeline compiles the same file to
    report a syntax error); a file that does not compile is left to the student's process, which reports it."""
    import py_compile
    for path in root.rglob("*.py"):
        cfile = path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc"
        try:
            py_compile.compile(str(path), cfile=str(cfile), doraise=True, optimize=0,
                               invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
            os.chmod(cfile, 0o444)
        except Exception:  # noqa: a syntax error, a file too deep to compile here: the student's process says
            pass


def _make_writable(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        try:
            os.chmod(dirpath, 0o755)
        except OSError:
            pass


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
        self._home: Path | None = None
        self._staged: tuple[str, str] | None = None   # (fingerprint, inside path) of the staged submission
        self._drivers: dict[str, str] = {}
        self._timed_out: set[tuple[str, str]] = set()   # (staged submission, module) that timed out

    # -- the private directory the sandbox sees ----------------------------------------------------------

    def _prepare_home(self) -> None:
        if self._home is not None:
            return
        home = Path(tempfile.mkdtemp(prefix="autograder-sandbox-"))
        os.chmod(home, 0o711)
        runtime = home / "runtime" / "autograder" / "runtime"
        runtime.mkdir(parents=True)
        (runtime.parent / "__init__.py").write_text('"""The student\'s-process runtime: nothing of the grader."""\n')
        for name in RUNTIME_FILES:
            shutil.copyfile(RUNTIME_DIR / name, runtime / name)
        (home / "runtime" / "drivers").mkdir()
        (home / "submission").mkdir()
        for dirpath, _, filenames in os.walk(home / "runtime"):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(home / "submission", 0o755)
        self._home = home
        atexit.register(self._remove_home)

    def _inside(self, path: Path) -> str:
        """`path` (under the home) as the server sees it."""
        if self.mechanism.name == "bwrap":
            return f"{INSIDE}/" + str(path.relative_to(self._home))
        return str(path)

    def _stage_driver(self, driver: str) -> tuple[str, str]:
        module_name, function = driver.split(":")
        if module_name not in self._drivers:
            source = _driver_file(module_name)
            name = re.sub(r"\W", "_", module_name)
            target = self._home / "runtime" / "drivers" / f"{name}.py"
            os.chmod(target.parent, 0o755)
            shutil.copyfile(source, target)
            os.chmod(target, 0o444)
            os.chmod(target.parent, 0o555)
            self._drivers[module_name] = self._inside(target)
        return self._drivers[module_name], function

    def _stage_submission(self, submission: Path) -> str:
        """The submission's private copy (the only one staged: the previous one is removed)."""
        submission = Path(submission).resolve()
        key = _fingerprint(submission)
        if self._staged and self._staged[0] == key:
            return self._staged[1]
        self._timed_out.clear()  # another submission: its own budget
        area = self._home / "submission"
        _make_writable(area)
        for old in area.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        self._staged = None
        target = area / os.urandom(8).hex()
        _copy_submission(submission, target)
        os.chmod(area, 0o555 if self.mechanism.name != "user" else 0o711)
        self._staged = (key, self._inside(target))
        return self._staged[1]

    def _remove_home(self) -> None:
        if self._home is not None:
            _make_writable(self._home)
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None
            self._staged = None
            self._drivers = {}

    # -- the server --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server now (it imports torch in the background while the grader computes truths)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close_server()
        self._prepare_home()
        kind = getattr(socket, "SOCK_SEQPACKET", None) if sys.platform.startswith("linux") else None
        ours, theirs = socket.socketpair(socket.AF_UNIX, kind or socket.SOCK_STREAM)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
        argv = [sys.executable, "-s", "-B", "-m", "autograder.runtime.worker", str(theirs.fileno())]
        kwargs = {}
        if self.mechanism.name == "bwrap":
            env.update(HOME="/tmp", TMPDIR="/tmp", AUTOGRADER_SCRATCH="/tmp", AUTOGRADER_SHARED_TMP="1")
            argv = _bwrap_argv(self._home, self._protect) + argv
            cwd = "/"
        else:
            # A scratch directory no earlier server had (a random name; the last one removed), so nothing a
            # replaced server's children left can be found by the next one's.
            for old in self._home.glob("scratch-*"):
                _disown(str(old)) if self.mechanism.name == "user" else shutil.rmtree(old, ignore_errors=True)
            scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=self._home))
            env.update(HOME=str(scratch), TMPDIR=str(scratch), AUTOGRADER_SCRATCH=str(scratch))
            cwd = str(self._home / "runtime")
            if self.mechanism.name == "user":
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
                self._prepare_home()
                root = self._stage_submission(submission)
                driver_file, function = self._stage_driver(driver)
            except (OSError, ValueError) as exc:
                failed = RunResult("error", kind="internal", message=plain(f"cannot prepare this run: {exc}", 300))
                return [failed] * len(cases)
            shortened = ""
            if (self._staged[0], module) in self._timed_out and time_limit > SHORTENED_LIMIT_MIN:
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
                        self._timed_out.add((self._staged[0], module))
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
        self._remove_home()
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


def _death_result(status) -> RunResult:
    """Why a child ended without replying for its current case."""
    if not isinstance(status, int):
        return RunResult("error", kind="crash", message="the grading process was killed while running this code")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU time limit exceeded", "SIGKILL": "killed (memory or time limit)",
               "SIGXFSZ": "wrote a file larger than the limit",
               "SIGSEGV": "crashed (segmentation fault; often the memory limit)"}.get(name, f"killed by {name}")
        return RunResult("timeout" if name == "SIGXCPU" else "error", kind="crash", message=why)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return RunResult("error", kind="exit",
                     message=f"the process exited (status {code}) without returning a result, e.g. os._exit()")


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


_KINDS = {"exception", "exit", "memory", "recursion", "blocked_import", "autograd_used", "internal"}


# faulthandler's first lines: its timer's (just before the deadline), and a fatal signal's (a crash)
_STACK_HEADER = re.compile(r"^(Timeout \(|Fatal Python error: )", re.M)
_STACK_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+)$', re.M)


def stack_at_timeout(output: str, root: str) -> tuple[str, str]:
    """(where the student's code was when the time ran out or it crashed, the output without the stack
    dump): the innermost frame in the submission of the stack the child printed."""
    found = list(_STACK_HEADER.finditer(output))
    if not found or not root:
        return "", output
    at = found[-1].start()
    prefix = root.rstrip("/") + "/"
    for frame in _STACK_FRAME.finditer(output, at):  # most recent call first
        if frame["file"].startswith(prefix):
            where = f"{frame['file'][len(prefix):]}, line {frame['line']}, in {frame['func'].strip()}"
            return plain(where, 300), output[:at].rstrip("\n")
    return "", output[:at].rstrip("\n")


_DUMP = re.compile(r"^Timeout \(\d+:\d\d:\d\d(?:\.\d+)?\)!\n(?:(?:Thread 0x[0-9a-f]+|Current thread 0x[0-9a-f]+|Stack)"
                   r"[^\n]*\n|  File \"[^\n]*\n|  \.\.\.[^\n]*\n|\n)*", re.M)


def _without_stack_dumps(output: str) -> str:
    """The case's output without the stack faulthandler printed shortly before its deadline, when the case
    then finished in time after all: that stack is the grader's timer, not something the student printed."""
    return _DUMP.sub("", output + "\n")[:-1] if "Timeout (" in output else output


def _to_result(reply: dict, output: str) -> RunResult:
    """A child's reply, validated: unknown statuses, kinds, shapes or sizes make it `malformed`."""
    output = _without_stack_dumps(output)
    status = reply.get("status")
    if status not in ("ok", "error", "not_implemented"):
        return RunResult("error", kind="malformed", message="the student's process sent an unknown reply",
                         output=output)
    outputs = {}
    if status == "ok":
        try:
            outputs = wire.decode(reply.get("outputs"))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            return RunResult("error", kind="malformed", output=output,
                             message=plain(f"returned a value the grader cannot read ({exc})", 300))
        if not isinstance(outputs, dict):
            outputs = {"value": outputs}
        outputs = _plain_strings(outputs)
    kind = str(reply.get("kind", ""))
    if status == "error" and kind not in _KINDS:
        kind = "exception"
    calls = reply.get("autograd_calls") or []
    return RunResult(status, outputs=outputs, message=plain(reply.get("message", ""), 2000),
                     where=plain(reply.get("where", ""), 300), kind=kind, output=output,
                     autograd_calls=[plain(c, 80) for c in calls][:10] if isinstance(calls, list) else [])


def _plain_strings(value):
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, list):
        return [_plain_strings(v) for v in value]
    if isinstance(value, dict):
        return {(plain(k) if isinstance(k, str) else k): _plain_strings(v) for k, v in value.items()}
    return value
