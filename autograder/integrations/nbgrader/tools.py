"""nbgrader: the grade-cell API, the stub-aware solution clearing, parallel autograde and the demo course.

In a notebook (see `notebooks.py` for how it is generated):
- the setup cell calls `start_notebook(assignment, links)`: from then on every cell whose first line is
  `# file: <path> (part i of n)` is recorded as it runs (the latest run of each part wins);
- a grade cell calls `notebook_grade(exercise_id, points)`: it turns the recorded cells into modules with
  the one notebook conversion (`submission.notebook_to_modules`), grades them with the normal pipeline
  (the student's code runs in the grader's separate, sandboxed process, never in the kernel) on the
  public cases, prints the `cmp`-style table on stdout and returns the points. It never writes to
  stderr and never raises. This is the student's own feedback while working.
- Under `nbgrader autograde` (NBGRADER_EXECUTION=autograde) a grade cell does nothing (it scores 0):
  the course's preprocessor (`integrations.nbgrader.preprocessor.GradeOutsideKernel`) grades the notebook's code
  outside the kernel and writes every grade cell's outputs and score, so nothing the kernel does counts.

Commands: `autograder nbgrader-autograde ASSIGNMENT --jobs N` autogrades the submitted notebooks of a
course with N `nbgrader autograde` processes over disjoint sets of students (same gradebook, same
scores as one `nbgrader autograde`); `python -m autograder.integrations.nbgrader.tools demo` runs the instructor flow
on a demo course in a temporary directory (what `make autograde` does).
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.authoring.notebooks import HEADER_RE

AUTOGRADE_ENV = "NBGRADER_EXECUTION"
TIME_LIMIT_ENV = "AUTOGRADER_NOTEBOOK_TIME_LIMIT"   # seconds per case in a grade cell (default: the exercise's)
INTERRUPTED = "# (this cell was interrupted before it finished: it is left out of the module)\n"


# -- recording the notebook's modules ------------------------------------------------------------------

class _Recorder:
    """The cells of the assignment's modules, as they were last run."""

    def __init__(self, assignment: str, links: dict[str, list[str]]):
        self.assignment = assignment
        self.links = {path: list(lines) for path, lines in (links or {}).items()}
        self.parts: dict[str, dict[int, str]] = {}
        self.totals: dict[str, int] = {}
        self._current: tuple[str, int] | None = None

    def record(self, source: str) -> None:
        self._current = None
        match = HEADER_RE.match(source or "")
        if match:
            path, part = match["path"], int(match["part"])
            self.parts.setdefault(path, {})[part] = source
            self.totals[path] = int(match["total"])
            self._current = (path, part)

    def finished(self, interrupted: bool) -> None:
        """A cell that was interrupted (e.g. nbgrader's timeout on an infinite loop) is left out."""
        if interrupted and self._current:
            path, part = self._current
            self.parts[path][part] = self.parts[path][part].split("\n", 1)[0] + "\n" + INTERRUPTED
        self._current = None

    # IPython event callbacks
    def pre_run_cell(self, info) -> None:
        self.record(getattr(info, "raw_cell", ""))

    def post_run_cell(self, result) -> None:
        self.finished(isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt))

    def missing(self) -> list[str]:
        notes = []
        for path, total in self.totals.items():
            absent = [str(i) for i in range(1, total + 1) if i not in self.parts.get(path, {})]
            if absent:
                notes.append(f"{path}: part {', '.join(absent)} not run yet")
        for path in self.links:
            if path not in self.parts:
                notes.append(f"{path}: none of its cells has run yet")
        return notes


_recorder: _Recorder | None = None
_runner = None


def start_notebook(assignment: str, links: dict | None = None) -> None:
    """The setup cell: record the module cells from now on, and start the grading worker."""
    global _recorder
    shell = _ipython()
    if shell is not None and _recorder is not None:
        for event in ("pre_run_cell", "post_run_cell"):
            with contextlib.suppress(ValueError):
                shell.events.unregister(event, getattr(_recorder, event))
    _recorder = _Recorder(assignment, links or {})
    if shell is not None:
        shell.events.register("pre_run_cell", _recorder.pre_run_cell)
        shell.events.register("post_run_cell", _recorder.post_run_cell)
    if _autograding():
        return  # the grading happens outside this kernel (nbgrader_preprocessor)
    with _quiet():
        with contextlib.suppress(Exception):
            _shared_runner()  # torch loads in the worker while the student's cells run


def _autograding() -> bool:
    return os.environ.get(AUTOGRADE_ENV) == "autograde"


GRADED_OUTSIDE = ("Under `nbgrader autograde` this cell is graded outside the notebook's kernel, by the course's "
                  "preprocessor (autograder.integrations.nbgrader.preprocessor), which replaces this output and score.\n")


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _shared_runner():
    """One grading worker per kernel: the torch import is paid once per notebook, not per grade cell."""
    global _runner
    if _runner is None:
        import atexit
        from autograder.sandbox.runner import Runner
        _runner = Runner()
        _runner.start()
        atexit.register(_runner.close)
    return _runner


class _BudgetRunner:
    """The shared runner with a per-case time limit for grade cells, which stops running an exercise's
    cases after its first timeout: an infinite loop costs one time limit, not one per case, so the grade
    cell ends well within nbgrader's cell timeout. Works with a runner that runs one case (`run`) or all
    of an exercise's cases in one process (`run_cases`): the first case goes alone, the rest together."""

    SKIPPED = "not run: an earlier case of this check did not finish in time"

    def __init__(self, runner, time_limit: float):
        self.runner, self.time_limit, self.timed_out = runner, time_limit, False

    @property
    def sandbox(self) -> str:
        return self.runner.sandbox

    def start(self) -> None:
        self.runner.start()

    def _skipped(self):
        from autograder.sandbox.runner import RunResult
        return RunResult("timeout", message=self.SKIPPED)

    def run(self, submission, module, driver, inputs, *, time_limit, **kwargs):
        if self.timed_out:
            return self._skipped()
        result = self.runner.run(submission, module, driver, inputs, time_limit=min(time_limit, self.time_limit),
                                 **kwargs)
        self.timed_out = result.status == "timeout"
        return result

    def run_cases(self, submission, module, driver, cases, *, time_limit, **kwargs):
        limit = min(time_limit, self.time_limit)
        batch = getattr(self.runner, "run_cases", None)

        def run_many(inputs_list):
            if batch is not None:
                return list(batch(submission, module, driver, inputs_list, time_limit=limit, **kwargs))
            return [self.runner.run(submission, module, driver, inputs, time_limit=limit, **kwargs)
                    for inputs in inputs_list]

        if self.timed_out or not cases:
            return [self._skipped() for _ in cases]
        first = run_many(list(cases[:1]))
        if first[0].status == "timeout":
            self.timed_out = True
            return first + [self._skipped() for _ in cases[1:]]
        return first + (run_many(list(cases[1:])) if len(cases) > 1 else [])


@contextlib.contextmanager
def _quiet():
    """Nothing reaches stderr: not Python's sys.stderr, not a warning, not a log record, not fd 2."""
    import logging
    import warnings
    saved_fd = None
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
        saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    previous_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous_disable)
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def notebook_grade(exercise_id: str, points: float | None = None, *, modules: dict[str, str] | None = None,
                   hidden: bool | None = None) -> float:
    """A grade cell: grade the notebook's code on one exercise; print the table; return the points.

    `modules` (path -> source) overrides what the notebook recorded; `hidden=True` also runs the hidden
    cases (needs AUTOGRADER_SECRET; default: public cases, the student's own feedback). Always returns a plain float in [0, points]; never raises, never uses stderr.
    Under `nbgrader autograde` it grades nothing and returns 0: the course's preprocessor sets the score."""
    if _autograding() and modules is None:
        sys.stdout.write(GRADED_OUTSIDE)
        return 0.0
    text = io.StringIO()
    score = 0.0
    try:
        limit = float(points) if points is not None else None
    except (TypeError, ValueError):
        limit = None
    with _quiet():
        try:
            score = _grade(exercise_id, limit, modules, hidden, text)
        except Exception as exc:  # noqa: a bug of ours, or a broken environment: no points, say why
            text.write(f"\nThe autograder could not grade {exercise_id}: {type(exc).__name__}: {exc}\n")
            score = 0.0
    sys.stdout.write(text.getvalue())
    sys.stdout.flush()
    score = float(score)
    if not score == score or score < 0:  # NaN or negative
        score = 0.0
    return min(score, limit) if limit is not None else score


def _find_exercise(exercise_id: str):
    from autograder.assignments import NAMES, exercises
    assignment = exercise_id.split(".", 1)[0]
    if assignment not in NAMES:
        raise KeyError(f"unknown assignment {assignment!r}")
    for exercise in exercises(assignment):
        if exercise.id == exercise_id:
            return exercise
    raise KeyError(f"unknown exercise {exercise_id!r}")


def _grade(exercise_id: str, points: float | None, modules: dict | None, hidden: bool | None, out) -> float:
    from autograder.core.exercise import Seeds
    from autograder.core.pipeline import grade
    exercise = _find_exercise(exercise_id)
    notes: list[str] = []
    if hidden is None:
        hidden = False  # the student's own feedback: public cases (grading for credit is the preprocessor's)
    time_limit = float(os.environ.get(TIME_LIMIT_ENV) or exercise.time_limit)
    runner = _BudgetRunner(_shared_runner(), time_limit)
    seeds = Seeds.for_credit() if hidden else Seeds(hidden=False)
    with tempfile.TemporaryDirectory(prefix="notebook-submission-") as tmp:
        if modules is None:
            if _recorder is None:
                out.write("Run the setup cell at the top of the notebook first.\n")
                return 0.0
            notes = _recorder.missing()
            from autograder.core.submission import SubmissionError
            try:
                directory = recorded_modules(_recorder, Path(tmp))
            except SubmissionError as exc:
                out.write(f"{exc}\n")
                for note in notes:
                    out.write(f"note: {note}\n")
                return 0.0
        else:
            directory = Path(tmp)
            write_modules(directory, modules)
        result = grade(directory, [exercise], hidden=hidden, runner=runner, seeds=seeds)
    from autograder.integrations.nbgrader.preprocessor import _render, exercise_points
    _render(result, out)
    fraction = exercise_points(result.exercises[0]) if result.exercises else 0.0
    if fraction < 1:  # cells not run yet explain a missing function
        for note in notes:
            out.write(f"note: {note}\n")
    return round((points if points is not None else exercise.points) * fraction, 4)


def recorded_modules(recorder: "_Recorder", directory: Path) -> Path:
    """The recorded cells as the assignment's modules, by the one notebook conversion (the same as
    `autograder grade notebook.ipynb`, `grade-all` and nbgrader autograde): a temporary notebook of the
    cells, in module and part order, converted by `submission.notebook_to_modules`."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from autograder.core.submission import notebook_to_modules
    cells = [new_code_cell(parts[i]) for _, parts in sorted(recorder.parts.items()) for i in sorted(parts)]
    path = directory / "recorded.ipynb"
    nbformat.write(new_notebook(cells=cells), str(path))
    return notebook_to_modules(path, directory / "submission")


def write_modules(directory: Path, modules: dict[str, str]) -> None:
    """The notebook's modules as files of a submission directory (packages get an `__init__.py`)."""
    for rel, source in modules.items():
        path = (directory / rel).resolve()
        if directory.resolve() not in path.parents:
            raise ValueError(f"module path {rel!r} leaves the submission directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        for parent in path.relative_to(directory.resolve()).parents:
            init = directory / parent / "__init__.py"
            if str(parent) != "." and not init.exists():
                init.write_text("")


# -- nbgrader generate_assignment: stubs that follow `### BEGIN SOLUTION stub: <code>` -------------------

def _clear_solutions_class():
    from nbgrader.preprocessors import ClearSolutions

    class ClearSolutionsWithStubs(ClearSolutions):
        """nbgrader's ClearSolutions, which also honours `### BEGIN SOLUTION stub: <code>` (the region
        becomes `<code>` instead of the default stub), so the release notebook matches student_template/."""

        def _replace_solution_region(self, cell, language):
            from autograder.authoring.templating import STUB_RE, strip_solutions
            if cell.cell_type != "code" or not any(STUB_RE.search(line) for line in cell.source.splitlines()):
                return super()._replace_solution_region(cell, language)
            source = strip_solutions(cell.source)
            changed = source != cell.source
            cell.source = source.rstrip("\n") if not cell.source.endswith("\n") else source
            return changed

    return ClearSolutionsWithStubs


def generate_assignment_preprocessors() -> list:
    """nbgrader's GenerateAssignment preprocessors with ClearSolutions replaced by the stub-aware one."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions
    stubbed = _clear_solutions_class()
    return [stubbed if p is ClearSolutions else p for p in GenerateAssignment.class_traits()["preprocessors"].default()]


# -- running nbgrader ----------------------------------------------------------------------------------

def nbgrader_command() -> list[str]:
    return [sys.executable, "-m", "nbgrader"]


def nbgrader_env(extra: dict | None = None) -> dict:
    """The environment for nbgrader: its gradebook migrations run `alembic` from this interpreter's bin/."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        path = bin_dir + os.pathsep + path
    return {**os.environ, "PATH": path, **(extra or {})}


def run_nbgrader(args: list[str], course: Path, *, check: bool = True, env: dict | None = None,
                 quiet: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(nbgrader_command() + args, cwd=course, text=True, capture_output=True,
                          env=nbgrader_env(env))
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"{proc.stderr[-3000:]}")
    return proc


def submitted_students(course: Path, assignment: str) -> list[str]:
    base = course / "submitted"
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir()) if base.is_dir() else []


def parallel_autograde(course: Path, assignment: str, jobs: int = 2, students: list[str] | None = None,
                       force: bool = True, env: dict | None = None, unsandboxed: bool = False,
                       public_only: bool = False) -> dict:
    """Autograde the submissions of `assignment` with `jobs` nbgrader processes over disjoint students.

    Each process is a plain `nbgrader autograde`, restricted to its group by `student_id_exclude`, so the
    gradebook gets exactly what nbgrader records. SQLite allows one writer at a time and nbgrader writes
    only briefly (at the start of a submission and when saving its grades), so the processes wait on the
    lock (pysqlite's busy timeout); a group that still fails on a locked database is rerun after the others.
    Returns {"students", "jobs", "seconds", "retried", "failed"}."""
    course = Path(course).resolve()
    everyone = submitted_students(course, assignment)
    chosen = [s for s in (students or everyone) if s in everyone]
    jobs = max(1, min(jobs, len(chosen) or 1))
    groups = [chosen[i::jobs] for i in range(jobs)]
    started = time.perf_counter()

    def launch(group):
        exclude = ",".join(s for s in everyone if s not in group)
        args = ["autograde", assignment, f"--CourseDirectory.student_id_exclude={exclude}"]
        if force:
            args.append("--force")
        args += [f"--GradeOutsideKernel.unsandboxed={unsandboxed}", f"--GradeOutsideKernel.public_only={public_only}"]
        return subprocess.Popen(nbgrader_command() + args, cwd=course, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=nbgrader_env(env))

    running = [(group, launch(group)) for group in groups if group]
    retry, failed = [], []
    for group, proc in running:
        log, _ = proc.communicate()
        if proc.returncode != 0:
            (retry if "database is locked" in log else failed).append((group, log))
    for group, _ in retry:  # one at a time now: no lock to wait for
        proc = launch(group)
        log, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append((group, log))
    return {"students": chosen, "jobs": jobs, "seconds": time.perf_counter() - started,
            "retried": [g for g, _ in retry], "failed": [(g, log[-2000:]) for g, log in failed]}


def gradebook_scores(course: Path, assignment: str) -> dict[str, dict[str, float]]:
    """student -> {grade cell id -> score} for one assignment, read from the course's gradebook."""
    from nbgrader.api import Gradebook
    course = Path(course).resolve()
    scores: dict[str, dict[str, float]] = {}
    with _quiet(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(assignment):
            cells = {}
            for notebook in submission.notebooks:
                for g in notebook.grades:
                    if g.max_score:
                        cells[g.name] = float(g.score)
            scores[submission.student_id] = cells
    return scores


def grade_table(scores: dict[str, dict[str, float]]) -> str:
    """A plain text table: one row per student, one column per grade cell, and the total."""
    cells = sorted({c for row in scores.values() for c in row})
    short = [c.split("-", 1)[-1] for c in cells]  # "graphs-AddGate" -> "AddGate"
    widths = [max(len(s), 5) for s in short]
    name_w = max([len("student")] + [len(s) for s in scores])
    lines = ["  ".join(["student".ljust(name_w)] + [s.rjust(w) for s, w in zip(short, widths)] + ["total"])]
    for student in sorted(scores):
        row = scores[student]
        values = [f"{row.get(c, 0.0):g}".rjust(w) for c, w in zip(cells, widths)]
        lines.append("  ".join([student.ljust(name_w)] + values + [f"{sum(row.values()):g}"]))
    return "\n".join(lines)


def regrade_outside_the_kernel(course: Path, assignment: str, students: list[str] | None = None,
                               runner=None, seeds=None) -> dict[str, dict[str, float]]:
    """student -> {grade cell id -> points}: each submitted notebook graded as `autograder grade` grades it
    (the same conversion, pipeline and result as the course's preprocessor), to cross-check the gradebook."""
    from autograder.assignments import exercises
    from autograder.core.exercise import Seeds
    from autograder.authoring.notebooks import grade_id
    from autograder.integrations.nbgrader.preprocessor import exercise_points
    from autograder.sandbox.runner import credit_runner
    from autograder.core.submission import grade_path
    course = Path(course).resolve()
    seeds = seeds or Seeds.for_credit()
    own = runner is None
    runner = runner or credit_runner(False)
    out: dict[str, dict[str, float]] = {}
    try:
        with _quiet():
            for student in students or submitted_students(course, assignment):
                path = course / "submitted" / student / assignment / f"{assignment}.ipynb"
                if not path.is_file():
                    continue
                result = grade_path(path, [assignment], hidden=seeds.hidden, runner=runner, seeds=seeds)
                by_id = {e.id: e for e in result.exercises}
                out[student] = {grade_id(ex.id): round(ex.points * exercise_points(by_id[ex.id]), 6)
                                if ex.id in by_id else 0.0 for ex in exercises(assignment)}
    finally:
        if own:
            runner.close()
    return out


def verify(course: Path, assignment: str, students: list[str] | None = None, runner=None,
           regraded: dict | None = None, seeds=None) -> list[str]:
    """The grade cells whose gradebook score differs from `autograder grade` on the submitted notebook."""
    recorded = gradebook_scores(course, assignment)
    if regraded is None:
        regraded = regrade_outside_the_kernel(course, assignment, students, runner, seeds)
    problems = []
    for student, cells in sorted(regraded.items()):
        for cell, points in sorted(cells.items()):
            got = recorded.get(student, {}).get(cell)
            if got is None or abs(got - points) > 1e-3:
                problems.append(f"{student} {cell}: gradebook {got}, `autograder grade` {points:g}")
    return problems


# -- the demo course -----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]


def make_course(course: Path, assignments: list[str], root: Path = REPO) -> None:
    """A course directory: the repository's nbgrader_config.py and source notebooks; release versions."""
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "assignments" / "nbgrader_config.py", course / "nbgrader_config.py")
    for assignment in assignments:
        src = root / "assignments" / "source" / assignment
        if not src.is_dir():
            raise FileNotFoundError(f"no source notebook for {assignment}: run `make templates`")
        shutil.copytree(src, course / "source" / assignment, dirs_exist_ok=True)
        run_nbgrader(["generate_assignment", assignment, "--force"], course)


def load_notebook(path: Path):
    import nbformat
    return nbformat.read(str(path), as_version=4)


def solution_filled(release, source):
    """The release notebook with every solution cell filled in from the source notebook (what a student
    who wrote the reference solution submits); other cells stay as released."""
    import copy
    out = copy.deepcopy(release)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
    for cell in out.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in by_id:
            cell.source = by_id[meta["grade_id"]].source
    return out


def edit_solution(nb, grade_id: str, edit) -> None:
    """Apply `edit(source) -> source` to one solution cell; the edit must change it."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            new = edit(cell.source)
            if new == cell.source:
                raise ValueError(f"the edit did not change cell {grade_id}")
            cell.source = new
            return
    raise KeyError(f"no cell {grade_id}")


def insert_after_begin(code: str, occurrence: int = 1):
    """An edit that inserts `code` right after the n-th `### BEGIN SOLUTION` line, at its indentation."""
    def edit(source: str) -> str:
        lines, seen = source.split("\n"), 0
        for i, line in enumerate(lines):
            if "### BEGIN SOLUTION" in line:
                seen += 1
                if seen == occurrence:
                    indent = line[: len(line) - len(line.lstrip())]
                    return "\n".join(lines[: i + 1] + [indent + c for c in code.split("\n")] + lines[i + 1:])
        return source
    return edit


def replace_once(old: str, new: str):
    def edit(source: str) -> str:
        return source.replace(old, new, 1)
    return edit


# One mistake per assignment, as students make it (DESIGN.md, decision 7): grade cell id -> edit.
DEMO_MISTAKES = {
    # the sign of one step flipped: dbngain wrong, every other step right (cascade-free).
    "backprop_ninja": ("backprop_ninja-part4", replace_once("dbngain = (bnraw * dhpreact).sum(0, keepdim=True)",
                                                            "dbngain = -(bnraw * dhpreact).sum(0, keepdim=True)")),
    # q = W x fans out into q * q: forgetting one branch halves dq (and so dW and dx).
    "graphs": ("graphs-part8", replace_once("dq = 2.0 * q", "dq = q")),
    # `=` instead of `+=` in the scalar engine: a value used twice keeps only one branch's gradient.
    "micrograd": ("micrograd-engine-part2", replace_once("self.grad += other.data * out.grad",
                                                         "self.grad = other.data * out.grad")),
    # the chain rule's factor 3 in d/db sin(3*b) forgotten.
    "micrograd_exercises": ("micrograd_exercises-part3", replace_once("df_db = 3*cos(3*b) + 2.5*b**1.5",
                                                                      "df_db = cos(3*b) + 2.5*b**1.5")),
}


def solution_cells(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def demo_submissions(course: Path, assignment: str) -> dict:
    """student -> notebook: the reference solution, the untouched release, and one with a mistake."""
    release = load_notebook(course / "release" / assignment / f"{assignment}.ipynb")
    source = load_notebook(course / "source" / assignment / f"{assignment}.ipynb")
    reference = solution_filled(release, source)
    subs = {"reference": reference, "template": release}
    if assignment in DEMO_MISTAKES:
        mistake = solution_filled(release, source)
        edit_solution(mistake, *DEMO_MISTAKES[assignment])
        subs["one-mistake"] = mistake
    return subs


def submit(course: Path, assignment: str, student: str, nb) -> Path:
    import nbformat
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    nbformat.write(nb, str(path))
    (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC\n")
    return path


def demo(assignments: list[str] | None = None, jobs: int = 2, keep: Path | None = None) -> int:
    """The instructor flow on a demo course in a temporary directory."""
    from autograder.assignments import NAMES
    available = [a for a in NAMES if (REPO / "assignments" / "source" / a / f"{a}.ipynb").is_file()]
    chosen = assignments or available
    if not chosen:
        print("No source notebooks in assignments/source: run `make templates` first.")
        return 1
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="backprop-lab-course-"))
    course = tmp / "course"
    from autograder.sandbox.runner import IsolationMissing, credit_runner
    env = {"AUTOGRADER_SECRET": os.environ.get("AUTOGRADER_SECRET") or f"demo-{os.urandom(8).hex()}"}
    try:
        credit_runner(False).close()
        unsandboxed = False
    except IsolationMissing as exc:  # a demo course of our own notebooks: say so and go on
        print(f"(demo) {exc}: grading the demo unsandboxed")
        unsandboxed = True
    try:
        for assignment in chosen:
            t0 = time.perf_counter()
            print(f"== {assignment}: nbgrader generate_assignment")
            make_course(course, [assignment])
            for student, nb in demo_submissions(course, assignment).items():
                submit(course, assignment, student, nb)
            print(f"== {assignment}: autograde {len(submitted_students(course, assignment))} submissions "
                  f"({jobs} nbgrader processes)")
            report = parallel_autograde(course, assignment, jobs=jobs, env=env, unsandboxed=unsandboxed)
            for group, log in report["failed"]:
                print(f"autograde failed for {', '.join(group)}:\n{log}")
            print(grade_table(gradebook_scores(course, assignment)))
            run_nbgrader(["generate_feedback", assignment, "--force"], course)
            print(f"   ({time.perf_counter() - t0:.1f} s)")
        run_nbgrader(["export", "--to", str(course / "grades.csv")], course)
        print(f"== grades.csv\n{(course / 'grades.csv').read_text()}")
        from autograder.core.exercise import Seeds
        for assignment in chosen:  # the export step also writes what the class got wrong
            out = course_class_report(course, assignment, Seeds(hidden=True, secret=env["AUTOGRADER_SECRET"]),
                                      unsandboxed=unsandboxed, jobs=jobs)
            print(f"== class report: {out / 'class_report.html'}")
        feedback = sorted((course / "feedback").rglob("*.html"))
        print("== feedback\n" + "\n".join(str(p) for p in feedback))
    finally:
        if not keep:
            print(f"(the demo course was in {tmp}; removed)")
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


# -- the class report -----------------------------------------------------------------------------------

def course_class_report(course: Path, assignment: str, seeds, *, unsandboxed: bool = False, jobs: int = 2) -> Path:
    """The export step's class report (what the class got wrong): every submitted notebook of `assignment`
    graded as `grade-all` grades it (the same scores as the gradebook: grading is deterministic), into
    COURSE/class_report/<assignment>/: one result JSON per student, class_report.html and class_report.csv."""
    from autograder.integrations.batch import run_batch
    out = course / "class_report" / assignment
    with tempfile.TemporaryDirectory(prefix="class-report-") as tmp:
        for student in submitted_students(course, assignment):
            notebooks = sorted((course / "submitted" / student / assignment).glob("*.ipynb"))
            if notebooks:  # one entry per student, named by the student's id, as grade-all expects
                shutil.copyfile(notebooks[0], Path(tmp) / f"{student}.ipynb")
        run_batch(Path(tmp), out, jobs=jobs, assignments=[assignment], seeds=seeds, unsandboxed=unsandboxed,
                  progress=False, fancy=False)
    return out


def cmd_nbgrader_class_report(args) -> int:
    course = Path(args.course).resolve()
    if not submitted_students(course, args.assignment):
        print(f"no submissions of {args.assignment} in {course / 'submitted'}", file=sys.stderr)
        return 2
    from autograder.core.exercise import SecretMissing, Seeds
    from autograder.sandbox.runner import IsolationMissing, credit_runner
    try:
        seeds = Seeds.for_credit(args.public_only)
        credit_runner(args.unsandboxed).close()
    except (SecretMissing, IsolationMissing) as exc:
        print(f"autograder nbgrader-class-report: refusing to grade for credit: {exc}", file=sys.stderr)
        return 2
    out = course_class_report(course, args.assignment, seeds, unsandboxed=args.unsandboxed, jobs=args.jobs)
    print(f"class report: {out / 'class_report.html'} (and class_report.csv, one result JSON per student)")
    return 0


# -- command line --------------------------------------------------------------------------------------

def cmd_nbgrader_autograde(args) -> int:
    course = Path(args.course).resolve()
    if not (course / "nbgrader_config.py").is_file():
        print(f"{course} is not an nbgrader course directory (no nbgrader_config.py)", file=sys.stderr)
        return 2
    if not submitted_students(course, args.assignment):
        print(f"no submissions of {args.assignment} in {course / 'submitted'}", file=sys.stderr)
        return 2
    from autograder.core.exercise import SECRET_ENV, SecretMissing, Seeds
    from autograder.integrations.nbgrader.preprocessor import _scrub_initial_environment, guard_process
    from autograder.sandbox.runner import IsolationMissing, credit_runner
    # This process hands the secret to nbgrader (its environment) and keeps it for --verify: no process of
    # the same user may read it from /proc/<this pid>/environ (the initial block) or anything else here.
    _scrub_initial_environment(SECRET_ENV)
    guard_process()
    try:  # refuse here, before any nbgrader process starts, with the same words as `autograder grade`
        seeds = Seeds.for_credit(args.public_only)
        credit_runner(args.unsandboxed).close()
    except (SecretMissing, IsolationMissing) as exc:
        print(f"autograder nbgrader-autograde: refusing to grade for credit: {exc}", file=sys.stderr)
        return 2
    report = parallel_autograde(course, args.assignment, jobs=args.jobs, students=args.student or None,
                                force=not args.no_force, unsandboxed=args.unsandboxed,
                                public_only=args.public_only)
    for group, log in report["failed"]:
        print(f"nbgrader autograde failed for {', '.join(group)}:\n{log}", file=sys.stderr)
    print(grade_table(gradebook_scores(course, args.assignment)))
    print(f"{len(report['students'])} submissions, {report['jobs']} processes, {report['seconds']:.1f} s")
    status = 1 if report["failed"] else 0
    if args.verify:
        runner = credit_runner(args.unsandboxed)
        try:
            problems = verify(course, args.assignment, report["students"], runner=runner, seeds=seeds)
        finally:
            runner.close()
        for line in problems:
            print(f"MISMATCH {line}")
        print(f"verify: {'scores differ, see above' if problems else 'every grade cell agrees'} "
              "(each submitted notebook graded as `autograder grade` grades it)")
        status = status or (1 if problems else 0)
    return status


def register(subparsers) -> None:
    p = subparsers.add_parser("nbgrader-autograde",
                              help="nbgrader autograde, with N processes over disjoint students (same gradebook)")
    p.add_argument("assignment")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    p.add_argument("--course", default="assignments", help="the nbgrader course directory (default: assignments)")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--no-force", action="store_true", help="skip submissions that are already autograded")
    p.add_argument("--verify", action="store_true",
                   help="then grade each submitted notebook as `autograder grade` does and report any grade cell "
                        "whose gradebook score differs")
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases (no AUTOGRADER_SECRET needed)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade even where no isolation mechanism works (every result says so)")
    p.set_defaults(func=cmd_nbgrader_autograde)

    p = subparsers.add_parser("nbgrader-class-report",
                              help="after nbgrader export: what the class got wrong, from the submitted notebooks")
    p.add_argument("assignment")
    p.add_argument("--course", default="assignments", help="the nbgrader course directory (default: assignments)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases (no AUTOGRADER_SECRET needed)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade even where no isolation mechanism works (every result says so)")
    p.set_defaults(func=cmd_nbgrader_class_report)


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.nbgrader.tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the instructor flow on a demo course in a temporary directory")
    p.add_argument("-a", "--assignment", action="append")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--keep", help="build the course here and keep it")
    register(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.assignment, args.jobs, Path(args.keep) if args.keep else None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
