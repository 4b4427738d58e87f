"""Choosing the isolation mechanism and preparing it: bubblewrap (its probe and argv) or a dedicated
unprivileged user (verified unable to reach the grader's files; one uid per concurrent runner, claimed
with a lock file in /run/autograder-sandbox; whatever a uid left behind removed before it is used again),
or `none` (resource limits only).

Mechanisms (AUTOGRADER_SANDBOX=auto|bwrap|user|none picks one; auto takes the first that works):
- bwrap: bubblewrap with all namespaces unshared (no network, own pid namespace), an unprivileged uid,
  and a filesystem of only: the Python runtime read-only, a private copy of the student's-process
  runtime and driver files, the submission's own copy (read-only), a private tmpfs /tmp, /dev, /proc.
- user: where user namespaces are unavailable (Docker, Gradescope) and the grader is root: the server
  runs as a dedicated unprivileged user (AUTOGRADER_SANDBOX_USER, default `backprop-student`), after the
  runner verified that user can neither read nor write the grader's files (`verify_user`).
- none: resource limits only (a student's laptop). `check` says so; grading for credit refuses it
  unless the operator passed --unsandboxed.
Under every mechanism each child also runs under the seccomp allowlist of policy.py, where the machine
can install it (see `seccomp_problem`).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from autograder.runtime import landlock
from autograder.sandbox.policy import seccomp_problem

SANDBOX_ENV = "AUTOGRADER_SANDBOX"
SANDBOX_USER_ENV = "AUTOGRADER_SANDBOX_USER"
DEFAULT_SANDBOX_USER = "backprop-student"
PROTECT_ENV = "AUTOGRADER_PROTECT"   # more paths the sandbox user must not reach (os.pathsep-separated)
PACKAGE_DIR = Path(__file__).resolve().parent.parent   # autograder/
PACKAGE_ROOT = PACKAGE_DIR.parent
SANDBOX_UID = 65534                   # the uid inside bubblewrap
INSIDE = "/sandbox"                   # where the runtime and the submission appear inside bubblewrap

_LIVE_SERVERS: set[int] = set()       # pids of this process's fork servers (see _reap_strays)


class IsolationMissing(RuntimeError):
    """Grading for credit was asked for on a machine with no isolation mechanism."""


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
    """The mechanism `mode` (default: $AUTOGRADER_SANDBOX, else auto) asks for, or `none` with the reason.
    Its description also says when the children run without the seccomp allowlist (no libseccomp here)."""
    mechanism = _choose_mechanism(mode, protect)
    missing = seccomp_problem()
    if missing:
        description = mechanism.description.replace("; sockets refused by seccomp", "")
        mechanism = replace(mechanism, description=f"{description}; no seccomp filter ({missing})")
    return mechanism


def _choose_mechanism(mode: str | None, protect) -> Mechanism:
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
            files = ("every file but the runtime, its submission and its scratch refused by Landlock" if landlock.abi()
                     else "no Landlock in this kernel: submissions graded at the same time share /tmp")
            return Mechanism("user", f"dedicated user {sandbox_user()} (uid {uid}; the grader's files "
                                     f"unreadable to it; {files}; sockets refused by seccomp)", True, uid=uid, gid=gid)
        problems.append(why)
    problem = "; ".join(problems) or "no isolation mechanism"
    return Mechanism("none", f"none: not isolated ({problem}); resource limits only", False, problem=problem)


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

