"""The grading pipeline: cases -> run -> compare -> diagnose -> score. Rendering lives in render.py.

`grade(submission)` returns a `GradeResult`; every front end (the terminal, JSON, nbgrader cells, CI
formats, batch grading) renders that one result.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from .compare import ERROR, NOT_IMPLEMENTED, PASSING, TIMEOUT, WRONG, Comparison, worst
from .diagnose import diagnose
from .exercise import Case, Exercise, Seeds
from .result import CaseVerdict, CheckResult, ExerciseResult, GradeResult  # noqa: F401  (re-exported)
from .runner import RunResult, Runner
from .static_scan import autograd_in_source

HIDDEN_REDACTED = "(details withheld for hidden cases)"


# -- cases and run ------------------------------------------------------------------------------------

_HIDDEN_TEXT = {"exception": "raised an exception", "exit": "exited (sys.exit or os._exit)",
                "memory": "ran out of memory (memory limit)", "recursion": "RecursionError: maximum recursion depth exceeded",
                "blocked_import": "imported a module that is not allowed here", "autograd_used": "used autograd",
                "crash": "the process was killed (memory or time limit, or a crash)"}


def _run_message(run: RunResult, case: Case) -> str:
    """The one-line reason a run failed. On a hidden case nothing the student's process chose is shown (its
    messages, exception names and even line numbers could carry the hidden inputs out): only the kind."""
    if case.hidden:
        if run.status == "timeout":
            return run.message
        if run.status == "not_implemented":
            return "raises NotImplementedError"
        return f"{_HIDDEN_TEXT.get(run.kind, 'failed')} {HIDDEN_REDACTED}"
    where = f" ({run.where})" if run.where else ""
    return f"{run.message}{where}"


def _failed_run(run: RunResult, case: Case, truth: dict) -> list[Comparison]:
    """Every check of a case whose run did not return: the same verdict and one-line reason."""
    verdict = {"timeout": TIMEOUT, "not_implemented": NOT_IMPLEMENTED}.get(run.status, ERROR)
    mistake = {"recursion": "recursion_limit", "autograd_used": "autograd_used"}.get(run.kind)
    if run.autograd_calls:
        mistake = "autograd_used"
    message = _run_message(run, case)
    return [Comparison(name, verdict, expected_shape=_shape_of(exp), message=message, mistake=mistake)
            for name, exp in truth.items()]


JUDGE_FAILED = "the grader could not judge this answer"


def _judged(exercise: Exercise, case: Case, run: RunResult, truth: dict) -> list[Comparison]:
    """The judge's comparisons for one case. A judge that raises on what the student returned costs this case
    an error verdict on every check, never the grade; a diagnosis that raises costs only its hint."""
    try:
        comparisons = list(exercise.judge(case, run.outputs, truth))
        if not all(isinstance(c, Comparison) for c in comparisons):
            raise TypeError("the judge returned something that is not a Comparison")
    except Exception as exc:  # noqa: the student's values reach the judge; nothing may escape it
        why = "" if case.hidden else f" ({type(exc).__name__})"
        return [Comparison(name, ERROR, expected_shape=_shape_of(exp), message=JUDGE_FAILED + why)
                for name, exp in truth.items()]
    for comparison in comparisons:
        got = run.outputs.get(comparison.name) if isinstance(run.outputs, dict) else None
        if comparison.name in truth:
            try:
                diagnose(comparison, got, truth[comparison.name], case, exercise.mistakes,
                         context={"outputs": run.outputs, "truth": truth})
            except Exception:  # noqa: a hint is a bonus; its failure must not cost the verdict
                pass
    return comparisons


def _shape_of(value) -> tuple | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else ()


# -- score ----------------------------------------------------------------------------------------------

def _aggregate(name: str, per_case: list[tuple[Case, Comparison]], max_points: float) -> CheckResult:
    """One check over all its cases: the worst verdict, the largest maxdiff, points by cases passed."""
    verdict = worst(*(c.verdict for _, c in per_case))
    locals_ = [c.local_verdict for _, c in per_case if c.local_verdict is not None]
    local = worst(*locals_) if locals_ else None
    earned = sum(1 for _, c in per_case if c.verdict in PASSING or c.local_verdict in PASSING)
    # The case that explains the verdict: the first public one with the worst verdict, else hidden.
    order = sorted(per_case, key=lambda cc: (cc[1].verdict != verdict, cc[0].hidden))
    case, shown = order[0]
    diffs = [c.maxdiff for _, c in per_case if c.maxdiff is not None]
    message, hint = shown.message, shown.hint
    if shown.verdict not in PASSING and case.hidden:
        prefix = f"hidden case ({case.label})" if case.label else "a hidden case"
        message = f"{prefix}: {message}" if message else prefix
    mistake = next((c.mistake for _, c in order if c.mistake), None)
    return CheckResult(
        name=name, verdict=verdict, local_verdict=local, maxdiff=max(diffs) if diffs else None,
        shape=list(shown.shape) if shown.shape is not None else None,
        expected_shape=list(shown.expected_shape) if shown.expected_shape is not None else None,
        mistake=mistake, message=message, hint=hint,
        points=round(max_points * earned / len(per_case), 6), max_points=max_points,
        cases=[CaseVerdict(cs.id, cs.hidden, c.verdict, c.local_verdict, c.maxdiff) for cs, c in per_case])


def first_wrong_step(checks: Iterable[CheckResult]) -> str | None:
    """The first check, in the exercise's order, that is wrong on its own (locally, where judged locally)."""
    for check in checks:
        own = check.local_verdict if check.local_verdict is not None else check.verdict
        if own in (WRONG, ERROR, TIMEOUT):
            return check.name
    return None


# -- the pipeline ---------------------------------------------------------------------------------------

_PREPARED: dict = {}


def prepared_cases(exercise: Exercise, seeds: Seeds) -> list[tuple[Case, dict]]:
    """An exercise's cases with their truths. They depend on the seeds only, not on the submission, so a
    process that grades many submissions (grade-all, a test session) builds them once."""
    key = (exercise.id, exercise.cases, exercise.truth, seeds)
    if key not in _PREPARED:
        if len(_PREPARED) >= 256:
            _PREPARED.clear()
        _PREPARED[key] = [(case, exercise.truth(case)) for case in exercise.cases(seeds)]
    return _PREPARED[key]


def grade_exercise(exercise: Exercise, submission: Path, runner: Runner, seeds: Seeds) -> ExerciseResult:
    started = time.perf_counter()
    prepared = prepared_cases(exercise, seeds)
    cases = [case for case, _ in prepared]
    missing = [f for f in exercise.required_files if not (submission / f).is_file()]
    per_check: dict[str, list[tuple[Case, Comparison]]] = {}
    output_parts, message = [], ""
    static = [] if missing or not exercise.forbid_autograd else \
        autograd_in_source(submission / exercise.required_files[0], exercise.entry)
    if missing:
        runs = [RunResult("error", kind="missing", message=f"missing file {', '.join(missing)}")] * len(cases)
    else:
        runs = [None] * len(cases)
        # Public and hidden cases never share a process: a public case's output is shown to the student.
        for hidden in (False, True):
            group = [i for i, case in enumerate(cases) if case.hidden == hidden]
            if not group:
                continue
            got = runner.run_cases(submission, exercise.module, exercise.driver, [cases[i].inputs for i in group],
                                   time_limit=exercise.time_limit, memory_mb=exercise.memory_limit_mb,
                                   blocked_imports=exercise.blocked_imports, blocked_why=exercise.blocked_why,
                                   forbid_autograd=exercise.forbid_autograd)
            for i, run in zip(group, got):
                runs[i] = run
        runs = [run if isinstance(run, RunResult) else RunResult("error", kind="internal", message="no result")
                for run in runs]
    for (case, truth), run in zip(prepared, runs):
        if run.output and not case.hidden:
            output_parts.append(run.output)
        if run.status == "ok" and not run.autograd_calls:
            comparisons = _judged(exercise, case, run, truth)
        else:
            comparisons = _failed_run(run, case, truth)
            message = message or _run_message(run, case)
        if static:
            for comparison in comparisons:
                comparison.verdict, comparison.local_verdict = ERROR, None
                comparison.mistake = "autograd_used"
                comparison.message = f"uses autograd ({'; '.join(static[:3])}): compute the gradients by hand"
        for comparison in comparisons:
            per_check.setdefault(comparison.name, []).append((case, comparison))
    weights = exercise.check_points or {name: 1.0 for name in per_check}
    total_weight = sum(weights.get(name, 0.0) for name in per_check) or 1.0
    checks = [_aggregate(name, items, exercise.points * weights.get(name, 0.0) / total_weight)
              for name, items in per_check.items()]
    for check in checks:
        if check.mistake and not check.hint:
            entry = next((m for m in exercise.mistakes if m.id == check.mistake), None)
            check.hint = entry.hint if entry else ""
    score = round(sum(c.points for c in checks), 6)
    return ExerciseResult(id=exercise.id, title=exercise.title or exercise.entry, score=score,
                          max_score=exercise.points, checks=checks, first_wrong_step=first_wrong_step(checks),
                          message=message, output="\n".join(output_parts)[-20000:],
                          seconds=time.perf_counter() - started)


def grade(submission: Path | str, exercises: list[Exercise], *, hidden: bool, runner: Runner | None = None,
          seeds: Seeds | None = None) -> GradeResult:
    """Grade one submission directory on the given exercises."""
    started = time.perf_counter()
    submission = Path(submission)
    own_runner = runner is None
    runner = runner or Runner()
    seeds = seeds or Seeds.from_env(hidden)  # before anything starts: no secret, no hidden grading
    runner.start()  # the worker imports torch while this process builds cases and truths
    try:
        results = [grade_exercise(exercise, submission, runner, seeds) for exercise in exercises]
    finally:
        if own_runner:
            runner.close()
    return GradeResult(submission=str(submission), score=round(sum(r.score for r in results), 6),
                       max_score=round(sum(r.max_score for r in results), 6), exercises=results,
                       hidden=hidden, sandbox=runner.sandbox, seconds=time.perf_counter() - started)
