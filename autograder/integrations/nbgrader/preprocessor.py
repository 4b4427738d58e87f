"""nbgrader grades outside the kernel (DESIGN.md, decision 11).

The course's `nbgrader_config.py` puts `GradeOutsideKernel` into nbgrader's autograde pipeline, after
`Execute` (which runs the notebook in a Jupyter kernel, for the feedback's outputs) and before
`SaveAutoGrades` (which records each grade cell's score in the gradebook). For every notebook it:
- converts the notebook's code cells, as submitted (nbgrader has already restored the locked cells),
  into the assignment's modules with the same conversion as `autograder grade x.ipynb` and `grade-all`
  (`submission.notebook_to_modules`: definitions only), so the three score a notebook the same;
- grades them in the sandboxed grader (the same pipeline and `GradeResult` as `autograder grade`), in a
  grading session fit for credit (`GradingSession(credit=True)`: it refuses without isolation or without
  AUTOGRADER_SECRET unless told `unsandboxed` / `public_only`);
- replaces every grade cell's outputs with the exercise's table (stdout) and its points (the cell's
  value), which is all `SaveAutoGrades` reads. Whatever the kernel printed, returned or patched in a
  grade cell is gone: nothing the student's cells do in the kernel reaches the gradebook.

No Jupyter kernel runs the student's cells (`autograde_preprocessors()` leaves nbgrader's Execute out):
the student's code runs only in the grader's sandbox, which sees the Python runtime, its own copy of the
code and a private /tmp (never the course, the checkout or the network). `run_kernel=True` brings the
kernel back for the feedback's outputs, in a bubblewrap sandbox just as tight (`SandboxedExecute`).

The secret is never reachable from the student's code: `take_secret()` (called by the course config
when nbgrader loads it, and again by the preprocessor) moves AUTOGRADER_SECRET out of the environment
children inherit, scrubs it from the process's initial environment block (what /proc/<pid>/environ
shows) and makes the process non-dumpable, so that even a process of the same user (`--unsandboxed`)
can read neither its environment, nor its descriptors, nor its memory. `autograder nbgrader-autograde`
does the same to itself.

A grade cell the student deleted is put back by nbgrader (the course sets
`OverwriteCells.add_missing_cells`) and graded like the others; a deleted or edited one is named in its
table, from the notebook as submitted, with the same words as `autograder grade` uses.

Grade cells themselves do nothing under `nbgrader autograde` (see `kernel.notebook_grade`): they
print that the cell is graded outside the kernel and score 0, so a course config without this
preprocessor gives no points rather than the kernel's.
"""
from __future__ import annotations

import atexit
import functools
import io
import os
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from traitlets import Bool, Float

from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.core.exercise import SECRET_ENV
from autograder.core.result import exact
from autograder.integrations.nbgrader.common import exercise_points, render_table as _render  # noqa: F401

_SECRET: str | None = None
_LOCK = threading.Lock()
_SESSIONS: dict = {}


def take_secret() -> None:
    """Move AUTOGRADER_SECRET from the environment (which children inherit) into this module, scrub it from
    this process's initial environment block, and make this process non-dumpable: then no process of
    the same user (a student's code graded with --unsandboxed) can read its /proc/<pid>/environ, fds or
    memory (the kernel checks ptrace access, which a non-dumpable process refuses without CAP_SYS_PTRACE)."""
    global _SECRET
    value = os.environ.pop(SECRET_ENV, None)
    if value:
        _SECRET = value
        _scrub_initial_environment(SECRET_ENV)
    guard_process()


def guard_process() -> None:
    """prctl(PR_SET_DUMPABLE, 0): this process's /proc files become root's (Linux; elsewhere nothing)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def _scrub_initial_environment(name: str) -> None:
    """Overwrite `NAME=value` in this process's initial environment block (what /proc/<pid>/environ
    shows to any process of the same user, however os.environ changed since). Best effort: Linux only."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        env_start, env_end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5), 0-based after pid/comm
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(env_start)
            block = mem.read(env_end - env_start)
            offset = 0
            for entry in block.split(b"\0"):
                if entry.startswith(name.encode() + b"="):
                    mem.seek(env_start + offset)
                    mem.write(b"_" * len(entry))
                offset += len(entry) + 1
    except (OSError, ValueError, IndexError):
        pass


def credit_session(unsandboxed: bool, public_only: bool):
    """This process's grading session fit for credit (one runner for every notebook nbgrader autogrades
    here), its secret the one `take_secret` kept; or the refusal (SecretMissing / IsolationMissing)."""
    from autograder.core.config import Config
    from autograder.core.session import GradingSession
    with _LOCK:
        key = (unsandboxed, public_only)
        session = _SESSIONS.get(key)
        if session is None:
            config = Config.from_env(secret=_SECRET, unsandboxed=unsandboxed,
                                     public_only=public_only)
            session = GradingSession(config, credit=True).open()
            atexit.register(session.close)
            _SESSIONS[key] = session
    return session


class GradingRefused(RuntimeError):
    """Grading for credit is not possible here (no isolation, or no secret): nothing is recorded."""


class GradeOutsideKernel(NbGraderPreprocessor):
    """Grade the notebook's code in the sandboxed grader; write every grade cell's outputs and score."""

    def _submitted_notebook(self, resources):
        path = _submitted_notebook_path(self.config, resources)
        if path is None:
            return None
        try:
            import nbformat
            return nbformat.read(str(path), as_version=4)
        except Exception:  # noqa: unreadable: nbgrader itself will have said so
            return None

    unsandboxed = Bool(False, help="grade even where no isolation mechanism works (as `autograder grade "
                                   "--unsandboxed`; every table then says so)").tag(config=True)
    public_only = Bool(False, help="grade public cases only (as `--public-only`): no AUTOGRADER_SECRET "
                                   "needed").tag(config=True)
    time_limit = Float(None, allow_none=True, help="cap every case's time limit, in seconds (as `grade-all "
                                                   "--time-limit`)").tag(config=True)

    def __init__(self, *args, **kwargs):
        """nbgrader builds the autograde pipeline before it runs the kernel: refusing here refuses before
        any of the student's code runs."""
        from autograder.core.exercise import SecretMissing
        from autograder.sandbox import IsolationMissing
        super().__init__(*args, **kwargs)
        take_secret()
        try:
            self._session = credit_session(self.unsandboxed, self.public_only)
        except (SecretMissing, IsolationMissing) as exc:
            option = "GradeOutsideKernel.public_only" if isinstance(exc, SecretMissing) else \
                "GradeOutsideKernel.unsandboxed"
            raise GradingRefused(f"refusing to grade for credit: {exc} (nbgrader: --{option}=True)") from None

    def preprocess(self, nb, resources):
        cells = graded_cells(nb)
        if not cells:
            return nb, resources
        assignments = sorted({ex.assignment for ex, _ in cells})
        result = grade_notebook(nb, assignments, self._session, self.time_limit)
        # What happened to the grade cells is read from the notebook as submitted: nbgrader has already
        # restored edited cells and put deleted ones back (OverwriteCells.add_missing_cells).
        submitted = self._submitted_notebook(resources)
        if submitted is not None:
            from autograder.core.submission import add_notes, grade_cell_notes
            add_notes(result, grade_cell_notes(submitted, assignments))
        for exercise, cell in cells:
            write_grade_cell(cell, exercise, result)
        return nb, resources


def _submitted_notebook_path(config, resources) -> Path | None:
    info = resources.get("nbgrader") or {}
    try:
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=config)
        folder = coursedir.format_path(coursedir.submitted_directory, info["student"], info["assignment"])
        path = Path(folder) / f"{info['notebook']}.ipynb"
    except Exception:  # noqa: not run by nbgrader's autograde (no student, no course)
        return None
    return path if path.is_file() else None


def graded_cells(nb) -> list:
    """(exercise, cell) for every grade cell of ours (its grade id is an exercise's: `graphs-AddGate`)."""
    from autograder.assignments import NAMES, exercises
    from autograder.authoring.notebooks import grade_id
    by_grade_id = {grade_id(ex.id): ex for name in NAMES for ex in exercises(name)}
    out = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution") \
                and meta.get("grade_id") in by_grade_id:
            out.append((by_grade_id[meta["grade_id"]], cell))
    return out


def grade_notebook(nb, assignments: list[str], session, time_limit: float | None = None):
    """The notebook's code graded as `autograder grade notebook.ipynb` grades it, in `session`: one `GradeResult`."""
    import nbformat
    from autograder.integrations.batch import cap_time_limits
    clean = nbformat.from_dict({**nb, "cells": [_without_outputs(c) for c in nb.cells]})
    with tempfile.TemporaryDirectory(prefix="nbgrader-notebook-") as tmp:
        path = Path(tmp) / "notebook.ipynb"
        nbformat.write(clean, str(path))
        return session.grade_submission(path, assignments, exercise_filter=functools.partial(cap_time_limits, time_limit),
                                        cell_notes=False)


def _without_outputs(cell):
    cell = dict(cell)
    if cell.get("cell_type") == "code":
        cell["outputs"], cell["execution_count"] = [], None
    return cell


def write_grade_cell(cell, exercise, result) -> float:
    """Replace the cell's outputs: the exercise's table on stdout, then its points as the cell's value."""
    from nbformat.v4 import new_output
    points = float(cell["metadata"]["nbgrader"].get("points") or exercise.points)
    text = io.StringIO()
    mine = next((e for e in result.exercises if e.id == exercise.id), None)
    if mine is None:
        why = result.error or "the notebook does not define what this check needs"
        text.write(f"{exercise.id}: not graded: {why}\n")
        score = 0.0
    else:
        _render(replace(result, exercises=[mine], score=mine.score, max_score=mine.max_score), text)
        score = round(float(exact(points) * mine.fraction), 6)  # exact until rendered, as Gradescope's
    text.write("(graded outside the notebook's kernel by the course's autograder)\n")
    cell["outputs"] = [new_output("stream", name="stdout", text=text.getvalue()),
                       new_output("execute_result", data={"text/plain": repr(score)},
                                  execution_count=cell.get("execution_count"))]
    return score


# -- the kernel, sandboxed where bubblewrap works ----------------------------------------------------------

def kernel_sandbox_prefix(notebook_dir: str = "/nonexistent", ipc_dir: str = "/nonexistent") -> list[str]:
    """bubblewrap for the kernel (run_kernel=True): every namespace unshared (no network: the kernel
    talks to nbgrader over Unix sockets in `ipc_dir`), its own pid namespace, and a filesystem of only the
    Python runtime (read-only, any installed copy of the grader covered up), the notebook's own folder
    (read-only), `ipc_dir` and a private /tmp: none of the course, the checkout or reference/.
    [] where bubblewrap does not work here."""
    import shutil
    import subprocess
    from autograder.sandbox.mechanisms import _hidden_paths, _python_paths  # the sandbox's own bind list
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return []
    cmd = [bwrap, "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    cmd += ["--tmpfs", "/tmp"]
    bound = ["/usr"] + _python_paths()
    for path in bound:
        cmd += ["--ro-bind", path, path]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime"):
        if os.path.exists(f"/etc/{name}"):
            cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for path in _hidden_paths():
        if any(path == b or path.startswith(b + os.sep) for b in bound):
            cmd += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    cmd += ["--dev", "/dev", "--proc", "/proc", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            "--setenv", "IPYTHONDIR", "/tmp/ipython", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib"]
    try:
        ok = subprocess.run(cmd + ["--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        return []
    for path in (notebook_dir, ipc_dir):
        if os.path.isdir(path):
            flag = "--bind" if path == ipc_dir else "--ro-bind"
            cmd += [flag, path, path]
    if os.path.isdir(notebook_dir):
        cmd += ["--chdir", notebook_dir]
    return cmd + ["--"]


def _sandboxed_kernel_manager():
    import tempfile
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):
        """The kernel in `kernel_sandbox_prefix()`, reached over Unix sockets (it has no network)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._ipc_dir = tempfile.mkdtemp(prefix="kernel-ipc-")
            self.transport = "ipc"
            self.ip = os.path.join(self._ipc_dir, "kernel")
            self.connection_file = os.path.join(self._ipc_dir, "kernel.json")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # A signal from out here does not reach the kernel in its own session and pid namespace:
            # nbclient's interrupt (a cell's timeout) goes as a message on the control channel instead.
            self.kernel_spec.interrupt_mode = "message"
            prefix = kernel_sandbox_prefix(str(kw.get("cwd") or "/nonexistent"), self._ipc_dir)
            return await super()._async_launch_kernel(prefix + kernel_cmd, **kw)

        def cleanup_resources(self, restart=False):
            super().cleanup_resources(restart)
            if not restart:
                import shutil
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

    return SandboxedKernelManager


def _sandboxed_execute():
    from nbgrader.preprocessors import Execute

    class SandboxedExecute(Execute):
        """nbgrader's Execute with the kernel in bubblewrap (run_kernel=True): it sees only the Python
        runtime, the notebook's folder and a private /tmp, and no network. Refuses where bubblewrap does
        not work: an unsandboxed kernel would see the course."""

        def __init__(self, *args, **kwargs):
            if not kernel_sandbox_prefix():
                raise GradingRefused("run_kernel=True runs the notebook in a kernel, which needs bubblewrap "
                                     "here (apt-get install bubblewrap); without it, leave run_kernel off")
            kwargs.setdefault("kernel_manager_class", _sandboxed_kernel_manager())
            super().__init__(*args, **kwargs)

    return SandboxedExecute


def autograde_preprocessors(run_kernel: bool = False) -> list:
    """nbgrader's autograde pipeline with GradeOutsideKernel right before SaveAutoGrades, and without
    Execute: the grade comes from our grader, so no student code runs in a Jupyter kernel at all (the
    kernel would see the course, the network and whatever its user can read; it also cost a kernel
    start and a torch import per notebook). The feedback then shows the student's code and every grade
    cell's table, not what the student's other cells printed. `run_kernel=True` keeps Execute, with the
    kernel in bubblewrap (`SandboxedExecute`, which refuses without it), for those outputs."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute, SaveAutoGrades
    default = list(Autograde.class_traits()["autograde_preprocessors"].default())
    if run_kernel:
        default = [_sandboxed_execute() if p is Execute else p for p in default]
    else:
        default = [p for p in default if p is not Execute]
    at = default.index(SaveAutoGrades)
    return default[:at] + [GradeOutsideKernel] + default[at:]
