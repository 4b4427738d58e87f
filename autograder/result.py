"""The one result every front end renders: torch-free plain data (JSON via `to_dict`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from . import __version__
from .verdicts import PASSING


@dataclass
class CaseVerdict:
    case: str
    hidden: bool
    verdict: str
    local_verdict: str | None = None
    maxdiff: float | None = None


@dataclass
class CheckResult:
    name: str
    verdict: str
    local_verdict: str | None
    maxdiff: float | None
    shape: list | None
    expected_shape: list | None
    mistake: str | None
    message: str
    hint: str
    points: float
    max_points: float
    cases: list[CaseVerdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING


@dataclass
class ExerciseResult:
    id: str
    title: str
    score: float
    max_score: float
    checks: list[CheckResult]
    first_wrong_step: str | None = None
    message: str = ""
    output: str = ""            # what the student's code printed on public cases
    seconds: float = 0.0


@dataclass
class GradeResult:
    submission: str
    score: float
    max_score: float
    exercises: list[ExerciseResult]
    hidden: bool
    sandbox: str
    seconds: float = 0.0
    version: str = __version__
    error: str | None = None    # the submission could not be graded at all (score 0)

    def to_dict(self) -> dict:
        return asdict(self)


def json_safe(obj):
    """JSON has no inf/NaN: write them as strings ("inf", "nan")."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj
