"""One grading session: what every front end grades through (the CLI's check, grade and watch, the HTML
report, grade-all's workers, nbgrader's preprocessor and grade cells, a notebook's check()).

    with GradingSession(config, credit=True) as session:      # refuses without isolation or secret
        result = session.grade_submission(path, ["graphs"])   # a folder, .zip or notebook as it arrived
    with GradingSession(config) as session:                   # check: degrades, and says so
        result = session.grade(folder, exercises)             # a folder graded in place

A session owns the runner (one fork server, started when the session opens and closed with it; a runner
handed in is borrowed and left open) and the seeds (public ones, or hidden ones from the configuration's
secret). Grading for credit (`credit=True`) needs a real isolation mechanism unless the configuration says
`unsandboxed` (every result then says so), and hidden cases need the secret unless it says `public_only`:
both refusals happen when the session opens, before any student code runs. The truths are computed once
per session's process (core.pipeline keeps them) and, for `check`-like sessions, kept on disk between
runs (`cache_truths`: the configuration's truth cache, public truths only).

Only this module (and autograder/sandbox/) constructs a Runner: tests/test_session.py checks it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from autograder.core.config import Config
from autograder.core.exercise import SECRET_ENV, Exercise, SecretMissing, Seeds
from autograder.core.result import GradeResult
from autograder.sandbox import IsolationMissing, Runner

__all__ = ["GradingSession", "IsolationMissing", "SecretMissing", "refusal"]


class GradingSession:
    """The runner, the seeds and the truths of one run; `grade()` / `grade_submission()` return a GradeResult."""

    def __init__(self, config: Config | None = None, *, credit: bool = False, hidden: bool | None = None,
                 runner=None, seeds: Seeds | None = None, protect: Iterable = (), cache_truths: bool = False,
                 start: bool = True):
        """`credit`: grading for credit (isolation required unless config.unsandboxed; hidden cases by
        default, unless config.public_only). `hidden`: whether `grade` runs the hidden cases by default
        (default: `credit and not config.public_only`). `runner`: borrow this one instead of building one.
        `seeds`: given (grade-all's workers get the client's). `protect`: more paths the student's code must
        not reach (the results' folder). `start`: start the runner's server when the session opens."""
        self.config = config if config is not None else Config.from_env()
        self.credit = credit
        self.hidden = (credit and not self.config.public_only) if hidden is None else hidden
        self.runner = runner
        self._own_runner = runner is None
        self._seeds = seeds
        self._protect = tuple(self.config.protect) + tuple(Path(p) for p in protect if p)
        self.cache_truths = cache_truths
        self._start = start
        self._open = False

    # -- lifetime -------------------------------------------------------------------------------------------

    def open(self) -> "GradingSession":
        """Build the seeds (SecretMissing) and the runner (IsolationMissing), then start the runner."""
        if self._open:
            return self
        try:
            if self._seeds is None and self.hidden:
                self._seeds = self.seeds(True)  # refuse now, before any process starts
            if self.runner is None:
                self.runner = self._build_runner()
            if self._start:
                self.runner.start()  # the worker imports torch while this process builds cases and truths
        except BaseException:
            self.close()
            raise
        self._open = True
        return self

    def close(self) -> None:
        if self._own_runner and self.runner is not None:
            self.runner.close()
            self.runner = None
        self._open = False

    def __enter__(self) -> "GradingSession":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _build_runner(self):
        runner = Runner(None if self.config.sandbox == "auto" else self.config.sandbox, protect=self._protect)
        if self.credit and not runner.isolated:
            if not self.config.unsandboxed:
                runner.close()
                raise IsolationMissing(
                    f"no isolation for the student's code on this machine ({runner.mechanism.problem}). Install "
                    "bubblewrap (`apt-get install bubblewrap`), or run as root with a dedicated unprivileged user "
                    f"(AUTOGRADER_SANDBOX_USER, default {self.config.sandbox_user}; see the README), or pass "
                    "--unsandboxed to grade without isolation")
            runner.sandbox = f"{runner.sandbox}; --unsandboxed: graded without isolation"
        return runner

    @property
    def sandbox(self) -> str:
        """What isolates the student's code (the description every result carries)."""
        self.open()
        return self.runner.sandbox

    # -- seeds and truths -----------------------------------------------------------------------------------

    def seeds(self, hidden: bool | None = None) -> Seeds:
        """The session's seeds, or those for `hidden` (hidden ones need the secret: SecretMissing)."""
        hidden = self.hidden if hidden is None else hidden
        if self._seeds is not None and self._seeds.hidden == hidden:
            return self._seeds
        if not hidden:
            return Seeds(hidden=False)
        if not self.config.secret:
            raise SecretMissing(f"{SECRET_ENV} is not set: hidden cases derive from it. Set it (the same value "
                                "for every run of a course), or pass --public-only to grade public cases only")
        return Seeds(hidden=True, secret=self.config.secret)

    @property
    def truth_cache(self) -> Path | None:
        return self.config.truth_cache if self.cache_truths else None

    # -- grading --------------------------------------------------------------------------------------------

    def grade(self, submission: Path | str, assignments=None, *, hidden: bool | None = None,
              seeds: Seeds | None = None, keep_outputs: dict | None = None,
              on_start: Callable[[Exercise], None] | None = None,
              on_exercise: Callable | None = None) -> GradeResult:
        """Grade the folder `submission` in place on `assignments` (names, Exercise objects, or None: those
        whose files it holds), through core.pipeline. `hidden`: also the hidden cases (default: the
        session's); `keep_outputs`, `on_start`, `on_exercise`: as core.pipeline.grade."""
        from autograder.core.pipeline import grade
        self.open()
        seeds = seeds or self.seeds(hidden)
        return grade(Path(submission), self.exercises(submission, assignments), hidden=seeds.hidden,
                     runner=self.runner, seeds=seeds, keep_outputs=keep_outputs, on_start=on_start,
                     on_exercise=on_exercise, truth_cache=self.truth_cache if not seeds.hidden else None)

    def grade_submission(self, path: Path | str, assignments: list[str] | None = None, *,
                         hidden: bool | None = None, seeds: Seeds | None = None, exercise_filter=None,
                         cell_notes: bool = True) -> GradeResult:
        """Grade a submission as it arrived (a folder, a .zip or a notebook: core.submission.grade_path,
        which unpacks it into a private copy and grades that through core.pipeline)."""
        from autograder.core.submission import grade_path
        self.open()
        seeds = seeds or self.seeds(hidden)
        if self.config.time_limit:
            exercise_filter = _capped(self.config.time_limit, exercise_filter)
        return grade_path(Path(path), assignments, hidden=seeds.hidden, runner=self.runner, seeds=seeds,
                          exercise_filter=exercise_filter, cell_notes=cell_notes)

    @staticmethod
    def exercises(submission, assignments) -> list[Exercise]:
        """`assignments` as exercises: names expanded, Exercise objects kept, None detected in `submission`."""
        from autograder.assignments import detect, exercises
        chosen = detect(Path(submission)) if assignments is None else assignments
        out = []
        for item in ([chosen] if isinstance(chosen, (str, Exercise)) else chosen):
            out.extend([item] if isinstance(item, Exercise) else exercises(item))
        return out


def _capped(seconds: float, then=None):
    """An exercise filter capping every case's time limit at `seconds` (after `then`, if given)."""
    from dataclasses import replace

    def cap(exercises):
        exercises = then(exercises) if then is not None else exercises
        return [replace(ex, time_limit=min(ex.time_limit, seconds)) for ex in exercises]
    return cap


def refusal(exc: BaseException) -> bool:
    """Whether `exc` is a session's refusal to grade for credit (no isolation, no secret)."""
    return isinstance(exc, (IsolationMissing, SecretMissing))
