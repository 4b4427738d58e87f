"""The one result every front end renders: torch-free plain data (JSON via `to_dict`).

Scoring lives here, once. A check's points follow from its cases (each an equal share of the check's
`max_points`, earned when the case is right globally or, where judged locally, right given the student's
own upstream values); an exercise's score is the sum of its checks' points, a grade's the sum of its
exercises'. Points are exact (`fractions.Fraction`) and rounded only when rendered, so every front end
(terminal, JSON, Gradescope, Classroom, JUnit, Markdown, CSV, nbgrader cells) shows the same figures and
the same pass/fail.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from autograder import __version__
from autograder.runtime.verdicts import PASSING

# A check's status: right on every case; full points but on some case only right given a wrong upstream
# ("correct step, wrong upstream"); anything less than full points.
PASSED, PASSED_LOCALLY, FAILED = "passed", "passed_locally", "failed"
POINT_DECIMALS_JSON = 6


def exact(x) -> Fraction:
    """Points as an exact fraction: a float is read as the decimal it prints as (0.1 is 1/10)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, str):
        return Fraction(x)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"points must be finite, got {x}")
    return Fraction(repr(x))


def _json_points(x: Fraction) -> float:
    return round(float(x), POINT_DECIMALS_JSON)


@dataclass
class CaseVerdict:
    case: str
    hidden: bool
    verdict: str
    local_verdict: str | None = None
    maxdiff: float | None = None

    @property
    def earned(self) -> bool:
        """The case earns its share: right, or right given the student's own upstream values."""
        return self.verdict in PASSING or self.local_verdict in PASSING


@dataclass
class CheckResult:
    """One check over all its cases. `verdict`/`local_verdict` are the worst over the cases; `maxdiff`,
    the shapes, `mistake`, `hint` and `message` all describe one case, the shown case (`case_label`)."""
    name: str
    verdict: str
    local_verdict: str | None
    maxdiff: float | None
    shape: list | None
    expected_shape: list | None
    mistake: str | None
    message: str
    hint: str
    max_points: Fraction
    cases: list[CaseVerdict] = field(default_factory=list)
    case_label: str = ""        # the case the row describes, e.g. "public case 1, float32, batch 32"
    example: dict | None = None  # a wrong PUBLIC case's numbers next to the truth's (pipeline.value_example)

    def __post_init__(self):
        self.max_points = exact(self.max_points)

    @property
    def earned_cases(self) -> int:
        if not self.cases:  # built without case detail: the check is its own single case
            return int(self.verdict in PASSING or self.local_verdict in PASSING)
        return sum(1 for c in self.cases if c.earned)

    @property
    def n_cases(self) -> int:
        return len(self.cases) or 1

    @property
    def points(self) -> Fraction:
        return self.max_points * Fraction(self.earned_cases, self.n_cases)

    @property
    def correct(self) -> bool:
        """Right on every case against the true value (no local credit needed)."""
        if not self.cases:
            return self.verdict in PASSING
        return all(c.verdict in PASSING for c in self.cases)

    @property
    def status(self) -> str:
        if self.correct:
            return PASSED
        return PASSED_LOCALLY if self.earned_cases == self.n_cases else FAILED

    @property
    def passed(self) -> bool:
        """Full points: the one pass/fail every front end shows."""
        return self.status != FAILED

    def to_dict(self) -> dict:
        return {
            "name": self.name, "status": self.status, "passed": self.passed,
            "points": _json_points(self.points), "max_points": _json_points(self.max_points),
            "verdict": self.verdict, "local_verdict": self.local_verdict, "maxdiff": self.maxdiff,
            "shape": self.shape, "expected_shape": self.expected_shape, "case_label": self.case_label,
            "mistake": self.mistake, "message": self.message, "hint": self.hint,
            "exact": {"points": str(self.points), "max_points": str(self.max_points)},
            "cases": [{"case": c.case, "hidden": c.hidden, "verdict": c.verdict, "local_verdict": c.local_verdict,
                       "maxdiff": c.maxdiff} for c in self.cases],
            **({"example": self.example} if self.example else {}),
        }


@dataclass(init=False)
class ExerciseResult:
    id: str
    title: str
    max_score: Fraction
    checks: list[CheckResult]
    first_wrong_step: str | None
    message: str                # why the student's code did not return, once for the exercise
    where: str                  # where it was when that happened (file, line, function), if known
    output: str                 # what the student's code printed on public cases
    seconds: float

    def __init__(self, id: str, title: str, max_score, checks: list[CheckResult], first_wrong_step: str | None = None,
                 message: str = "", output: str = "", seconds: float = 0.0, where: str = "", score=None):
        # `score` is accepted for old callers and ignored: the score is always the sum of the checks' points.
        self.id, self.title, self.max_score, self.checks = id, title, exact(max_score), list(checks)
        self.first_wrong_step, self.message, self.where = first_wrong_step, message, where
        self.output, self.seconds = output, seconds

    @property
    def score(self) -> Fraction:
        return sum((c.points for c in self.checks), Fraction(0))

    @property
    def fraction(self) -> Fraction:
        """The share of the exercise earned, in [0, 1] (an nbgrader grade cell's partial credit)."""
        return min(Fraction(1), self.score / self.max_score) if self.max_score else Fraction(0)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "title": self.title, "score": _json_points(self.score),
            "max_score": _json_points(self.max_score), "fraction": _json_points(self.fraction),
            "exact": {"score": str(self.score), "max_score": str(self.max_score)},
            "first_wrong_step": self.first_wrong_step, "message": self.message, "where": self.where,
            "output": self.output, "seconds": self.seconds, "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(init=False)
class GradeResult:
    submission: str
    exercises: list[ExerciseResult]
    hidden: bool
    sandbox: str
    seconds: float
    version: str
    error: str | None           # the submission could not be graded at all (score 0)

    def __init__(self, submission: str, score=None, max_score=None, exercises: list[ExerciseResult] = (),
                 hidden: bool = False, sandbox: str = "-", seconds: float = 0.0, version: str = __version__,
                 error: str | None = None):
        # `score` is accepted for old callers and ignored (it is the sum of the exercises' scores);
        # `max_score` counts only when there is no exercise to sum (a submission that could not be graded).
        self.submission, self.exercises, self.hidden, self.sandbox = submission, list(exercises), hidden, sandbox
        self.seconds, self.version, self.error = seconds, version, error
        self._max_score_without_exercises = exact(max_score or 0)

    @property
    def score(self) -> Fraction:
        return sum((e.score for e in self.exercises), Fraction(0))

    @property
    def max_score(self) -> Fraction:
        if not self.exercises:
            return self._max_score_without_exercises
        return sum((e.max_score for e in self.exercises), Fraction(0))

    def to_dict(self) -> dict:
        return {
            "submission": self.submission, "score": _json_points(self.score),
            "max_score": _json_points(self.max_score),
            "exact": {"score": str(self.score), "max_score": str(self.max_score)},
            "hidden": self.hidden, "sandbox": self.sandbox, "seconds": self.seconds, "version": self.version,
            "error": self.error, "exercises": [e.to_dict() for e in self.exercises],
        }


def json_safe(obj):
    """JSON has no inf/NaN: write them as strings ("inf", "nan")."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def _fraction_from(data: dict, key: str):
    exact_ = (data.get("exact") or {}).get(key)
    return exact(exact_) if exact_ is not None else exact(data.get(key) or 0)


def _number(x):
    """JSON wrote inf/NaN as strings: read them back as floats."""
    return float(x) if isinstance(x, str) and x in ("inf", "-inf", "nan") else x


def result_from_dict(data: dict) -> GradeResult:
    """A `GradeResult` from its JSON form (`to_dict`). Points, pass/fail and totals are recomputed from
    the cases and the exact maxima, so they are the same as the original's."""
    exercises = []
    for ex in data.get("exercises", []):
        checks = []
        for c in ex.get("checks", []):
            cases = [CaseVerdict(v["case"], bool(v["hidden"]), v["verdict"], v.get("local_verdict"),
                                 _number(v.get("maxdiff"))) for v in c.get("cases", [])]
            checks.append(CheckResult(
                name=c["name"], verdict=c["verdict"], local_verdict=c.get("local_verdict"),
                maxdiff=_number(c.get("maxdiff")), shape=c.get("shape"), expected_shape=c.get("expected_shape"),
                mistake=c.get("mistake"), message=c.get("message") or "", hint=c.get("hint") or "",
                max_points=_fraction_from(c, "max_points"), cases=cases, case_label=c.get("case_label") or "",
                example=c.get("example") if isinstance(c.get("example"), dict) else None))
        exercises.append(ExerciseResult(
            id=ex["id"], title=ex.get("title") or "", max_score=_fraction_from(ex, "max_score"), checks=checks,
            first_wrong_step=ex.get("first_wrong_step"), message=ex.get("message") or "",
            where=ex.get("where") or "", output=ex.get("output") or "", seconds=ex.get("seconds") or 0.0))
    return GradeResult(submission=data.get("submission", ""), max_score=_fraction_from(data, "max_score"),
                       exercises=exercises, hidden=bool(data.get("hidden")), sandbox=data.get("sandbox", "-"),
                       seconds=data.get("seconds") or 0.0, version=data.get("version", __version__),
                       error=data.get("error"))


# -- the student's text ------------------------------------------------------------------------------------

def _escape_control(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 control characters but tab and newline, DEL, and the Unicode bidirectional overrides and
# isolates (which reorder what follows them on screen).
_CONTROL = {c for c in range(0x20) if c not in (0x09, 0x0A)} | set(range(0x7F, 0xA0)) | \
    set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))
_CONTROL_TABLE = {c: _escape_control(chr(c)) for c in _CONTROL}


def printable(text) -> str:
    """The student's text as inert characters: control characters (ANSI escapes, carriage returns, bidi
    overrides) written out as `\\x1b`-style escapes, so no terminal, log viewer or page acts on them.
    Markup (rich, Markdown, HTML) is each renderer's to escape."""
    return str(text).translate(_CONTROL_TABLE)


def printable_output(text) -> str:
    """What the student's code printed, as lines of inert text: a carriage return (a progress bar
    redrawing its line) starts a new line rather than showing as `\\x0d`."""
    return printable(str(text).replace("\r\n", "\n").replace("\r", "\n"))
