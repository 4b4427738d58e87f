"""Submissions as they arrive: a directory (a zip or notebook is unpacked into one first).

A malformed submission is never a crash: it becomes a `GradeResult` with score 0 and an `error`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .pipeline import GradeResult, grade


class SubmissionError(Exception):
    """The submission cannot be graded as it is (missing, not a zip, unsafe paths...)."""


def open_submission(path: Path, workdir: Path) -> Path:
    """The directory to grade for `path`; unpacks into `workdir` when needed."""
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    if path.is_dir():
        return path
    raise SubmissionError(f"{path} is not a directory")


def grade_path(path: Path, assignments: list[str] | None, *, hidden: bool, runner=None) -> GradeResult:
    from .assignments import detect, exercises
    with tempfile.TemporaryDirectory(prefix="submission-") as tmp:
        try:
            directory = open_submission(path, Path(tmp))
            names = assignments or detect(directory)
            if not names:
                raise SubmissionError("no assignment files found (expected e.g. micrograd/engine.py, "
                                      "backprop_ninja.py or graphs.py)")
            exs = [ex for name in names for ex in exercises(name)]
        except (SubmissionError, KeyError) as exc:
            return GradeResult(submission=str(path), score=0.0, max_score=_max_score(assignments),
                               exercises=[], hidden=hidden, sandbox="-", error=str(exc).strip("'\""))
        return grade(directory, exs, hidden=hidden, runner=runner)


def _max_score(assignments: list[str] | None) -> float:
    from .assignments import NAMES, exercises
    try:
        return float(sum(ex.points for name in (assignments or []) if name in NAMES for ex in exercises(name)))
    except Exception:
        return 0.0
