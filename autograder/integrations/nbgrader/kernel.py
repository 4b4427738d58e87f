"""What runs in the student's notebook kernel: the grade-cell API of the nbgrader course's notebooks.

- the setup cell calls `start_notebook(assignment, links)`: from then on every cell whose first line is
  `# file: <path> (part i of n)` is recorded as it runs (the latest run of each part wins);
- a grade cell calls `notebook_grade(exercise_id, points)`: it turns the recorded cells into modules with
  the one notebook conversion (`submission.notebook_to_modules`), grades them in a grading session (the
  student's code runs in the grader's separate, sandboxed process, never in the kernel) on the public
  cases, prints the `cmp`-style table on stdout and returns the points. It never writes to stderr and
  never raises. This is the student's own feedback while working.
- Under `nbgrader autograde` (NBGRADER_EXECUTION=autograde) a grade cell does nothing (it scores 0): the
  course's preprocessor (`integrations.nbgrader.preprocessor.GradeOutsideKernel`) grades the notebook's
  code outside the kernel and writes every grade cell's outputs and score, so nothing the kernel does counts.

Nothing here imports nbgrader: the instructor's side (the preprocessor, the course tools in `course`)
runs in other processes.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

from autograder.authoring.notebooks import HEADER_RE
from autograder.integrations.nbgrader.common import exercise_points, quiet as _quiet, render_table

AUTOGRADE_ENV = "NBGRADER_EXECUTION"                  # read by core.config (nbgrader_autograding)
TIME_LIMIT_ENV = "AUTOGRADER_NOTEBOOK_TIME_LIMIT"     # read by core.config (notebook_time_limit)
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
_recorder: _Recorder | None = None
_session = None     # the kernel's grading session: one worker per notebook, torch imported once


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
    config, _ = _read_config()
    if _autograding(config):
        return  # the grading happens outside this kernel (the course's preprocessor)
    with _quiet():
        with contextlib.suppress(Exception):
            _shared_session(config)  # torch loads in the worker while the student's cells run


def _read_config():
    """(the configuration, None), or (None, why) when a setting is unusable (said in the grade cell's output)."""
    from autograder.core.config import Config, ConfigError
    try:
        return Config.from_env(), None
    except ConfigError as exc:
        return None, exc


def _autograding(config) -> bool:
    if config is None:  # another setting is unusable: this one as nbgrader sets it
        return os.environ.get(AUTOGRADE_ENV) == "autograde"
    return config.nbgrader_autograding


GRADED_OUTSIDE = ("Under `nbgrader autograde` this cell is graded outside the notebook's kernel, by the course's "
                  "preprocessor (autograder.integrations.nbgrader.preprocessor), which replaces this output and score.\n")


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _shared_session(config):
    """One grading session per kernel: the torch import is paid once per notebook, not per grade cell."""
    global _session
    if _session is None:
        import atexit
        from autograder.core.session import GradingSession
        _session = GradingSession(config).open()
        atexit.register(_session.close)
    return _session


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
        from autograder.sandbox import RunResult
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


def notebook_grade(exercise_id: str, points: float | None = None, *, modules: dict[str, str] | None = None,
                   hidden: bool | None = None) -> float:
    """A grade cell: grade the notebook's code on one exercise; print the table; return the points.

    `modules` (path -> source) overrides what the notebook recorded; `hidden=True` also runs the hidden
    cases (needs AUTOGRADER_SECRET; default: public cases, the student's own feedback). Always returns a plain
    float in [0, points]; never raises, never uses stderr.
    Under `nbgrader autograde` it grades nothing and returns 0: the course's preprocessor sets the score."""
    config, problem = _read_config()  # the environment, read once for this cell
    if _autograding(config) and modules is None:
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
            if problem is not None:
                raise problem
            score = _grade(exercise_id, limit, modules, hidden, text, config)
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


def _grade(exercise_id: str, points: float | None, modules: dict | None, hidden: bool | None, out,
           config) -> float:
    from autograder.core.session import GradingSession
    exercise = _find_exercise(exercise_id)
    notes: list[str] = []
    if hidden is None:
        hidden = False  # the student's own feedback: public cases (grading for credit is the preprocessor's)
    shared = _shared_session(config)
    time_limit = config.notebook_time_limit or exercise.time_limit
    # this cell's own session, on the kernel's worker with this cell's time budget
    session = GradingSession(config, runner=_BudgetRunner(shared.runner, time_limit), hidden=hidden)
    seeds = session.seeds()  # hidden: needs the secret (SecretMissing, said in the cell's output)
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
        result = session.grade(directory, [exercise], seeds=seeds)
    render_table(result, out)
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
