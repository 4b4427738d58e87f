"""Grade a folder of submissions: `autograder grade-all ROOT -o OUTDIR [--jobs N] [--scheduler ADDRESS]`.

Every entry of ROOT is one student's submission (a folder, a .zip or a notebook), named by the
student's id. Each result is written to OUTDIR/<id>.json atomically (a temporary file, then
`os.replace`), the moment it is graded, and `grades.csv` is rewritten (atomically) after each one. A
run that is killed (even with SIGKILL) and started again skips every result already on disk, so nothing
is lost, duplicated or half-written; its workers' temporary files live in one directory per run, removed
when the run ends (SIGTERM and SIGINT included) or, after a SIGKILL, by the next run.

Executors, both standard: a process pool on this machine ('spawn' start method: a pool worker never
inherits a parent that has touched torch's thread pool), or, with `--scheduler`, a Dask distributed
`Client` connected to an existing cluster (ROOT must then be readable at the same path by the
workers, e.g. a shared filesystem; results come back to this process, which writes OUTDIR). Each
worker process keeps one `GradingSession` (one fork server with torch loaded) for all its submissions.

A submission cannot stop the batch: the student's code runs in the fork server's sandboxed children;
a malformed submission becomes an error result with score 0; and should a grading process die
anyway, its submissions are retried on a fresh one, then reported as not graded (no result written,
so the next run tries again).
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

RESULTS_CSV = "grades.csv"
MAX_ATTEMPTS = 2                     # a submission whose grading process died is tried this often
_SAFE_ID = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass(frozen=True)
class Submission:
    student: str      # the id: the entry's name without .zip/.ipynb, safe as a file name
    path: Path

    @property
    def result_name(self) -> str:
        return f"{self.student}.json"


class BatchError(Exception):
    """The batch cannot start as asked (e.g. two submissions would share one student id)."""


def student_id(path: Path) -> str:
    """A submission's student id: its name without .zip/.ipynb, made safe as a file name."""
    stem = path.name[: -len(path.suffix)] if path.suffix in (".zip", ".ipynb") and path.is_file() else path.name
    return _SAFE_ID.sub("_", stem) or "_"


def find_submissions(root: Path, skip: tuple[Path, ...] = ()) -> list[Submission]:
    """One submission per entry of ROOT (hidden entries and the output folder left out). Two entries with
    one student id (`bob smith/` and `bob_smith/`; `alice/` and `alice.zip`) are refused, naming both:
    one would overwrite the other's result, or a student would get two rows."""
    root = Path(root)
    skipped = {p.resolve() for p in skip}
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.resolve() not in skipped)
    by_id: dict[str, list[Path]] = {}
    for path in entries:
        by_id.setdefault(student_id(path), []).append(path)
    clashes = {sid: paths for sid, paths in by_id.items() if len(paths) > 1}
    if clashes:
        lines = [f"  {sid}: " + ", ".join(str(p) for p in paths) for sid, paths in sorted(clashes.items())]
        raise BatchError("these submissions would share a student id (rename or remove all but one of each; "
                         "nothing was graded):\n" + "\n".join(lines))
    return [Submission(sid, paths[0]) for sid, paths in by_id.items()]


def content_hash(path: Path) -> str:
    """sha256 of a submission as it is on disk (a file's bytes; a folder's relative paths and bytes), so a
    submission replaced since its grade is graded again."""
    import hashlib
    digest = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
    for file in files:
        rel = file.relative_to(path).as_posix() if file != path else file.name
        digest.update(rel.encode() + b"\0")
        if file.is_symlink():
            digest.update(b"link:" + os.readlink(file).encode())
        else:
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def read_result(path: Path) -> dict | None:
    """A finished result, or None (absent, or not a complete result)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "score" in data and "student" in data else None


# -- in the worker process ------------------------------------------------------------------------------

_SESSIONS: dict = {}
_SESSION_LOCK = threading.Lock()  # a Dask worker may run several tasks at once in threads


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux): a `kill -9` of grade-all leaves no worker."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the line above
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _session(unsandboxed: bool = False):
    """This process's grading session, fit for credit, opened once and reused for every submission it grades.
    Its seeds come with each task (built on the client: the secret is never in a worker's environment)."""
    with _SESSION_LOCK:
        session = _SESSIONS.get(unsandboxed)
        if session is None:
            from autograder.core.config import Config
            from autograder.core.session import GradingSession
            session = GradingSession(Config.from_env(unsandboxed=unsandboxed), credit=True, hidden=False).open()
            atexit.register(session.close)
            _SESSIONS[unsandboxed] = session
    return session


def _init_pool_worker(settings: dict | None = None, unsandboxed: bool = False) -> None:
    die_with_parent()
    os.environ.update(settings or {})
    _session(unsandboxed)  # first: its fork server imports torch while this process does
    import torch
    torch.set_num_threads(1)  # N pool workers on N cores: no oversubscription
    import autograder.core.pipeline  # noqa: F401  what grading a submission imports, before the first one
    import autograder.core.submission  # noqa: F401
    import nbformat  # noqa: F401


def cap_time_limits(seconds: float | None, exercises: list) -> list:
    """The exercises with every case's time limit at most `seconds`."""
    if not seconds:
        return exercises
    return [replace(ex, time_limit=min(ex.time_limit, seconds)) for ex in exercises]


# Settings of the grading process that travel with every task (a Dask worker has its own environment): the
# sandbox reads them from its process's environment.
SETTINGS_ENV = ("AUTOGRADER_SANDBOX_USER", "AUTOGRADER_SANDBOX")


def worker_settings(config) -> dict:
    """The configuration's sandbox settings that differ from the defaults, as the variables a worker sets."""
    from autograder.core.config import Config
    default = Config()
    out = {}
    if config.sandbox_user != default.sandbox_user:
        out["AUTOGRADER_SANDBOX_USER"] = config.sandbox_user
    if config.sandbox != default.sandbox:
        out["AUTOGRADER_SANDBOX"] = config.sandbox
    return out


def prepare_truths(assignments: list[str] | None, seeds, cache: Path) -> None:
    """The cases and truths of `assignments`, computed once for the whole run into `cache` (a private directory
    of this run) by the first worker that needs them, while the others wait on its lock and then read them.
    After the first call a worker holds them in memory (core.pipeline), so later calls cost a lock."""
    import fcntl
    from autograder.assignments import exercises
    from autograder.core.pipeline import prepared_cases
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in assignments or ():
            for exercise in exercises(name):
                prepared_cases(exercise, seeds, cache)


# One submission at a time per worker process, on one intra-op thread, whatever the engine: a Dask worker
# with several threads would otherwise grade submissions side by side through its one runner, and a case
# near its (wall-clock) time limit would score differently there than in the pool.
_ONE_AT_A_TIME = threading.Lock()


def grade_one(path: str, student: str, assignments: list[str] | None, seeds, time_limit: float | None,
              unsandboxed: bool = False, settings: dict | None = None, truths: str | None = None) -> dict:
    """Grade one submission in this worker; the dict written to OUTDIR/<student>.json. `seeds` are built on
    the client (the secret never has to be in the worker's environment); `path` is absolute. `truths`: the
    run's truths directory (`prepare_truths`), read once per worker process."""
    with _ONE_AT_A_TIME:
        import torch
        torch.set_num_threads(1)  # as the pool's workers (_init_pool_worker): no oversubscription
        return _grade_one(path, student, assignments, seeds, time_limit, unsandboxed, settings, truths)


def _grade_one(path, student, assignments, seeds, time_limit, unsandboxed, settings, truths) -> dict:
    from autograder.frontends.render import json_dict
    for key, value in (settings or {}).items():
        os.environ.setdefault(key, value)
    if truths and os.path.isdir(truths):
        prepare_truths(assignments, seeds, Path(truths))  # from the files: computed only if one is missing
    digest = content_hash(Path(path))
    result = _session(unsandboxed).grade_submission(Path(path), assignments, seeds=seeds,
                                                   exercise_filter=functools.partial(cap_time_limits, time_limit))
    return {"student": student, "content_sha256": digest, **json_dict(result)}


# -- executors -------------------------------------------------------------------------------------------

class PoolExecutor:
    """A process pool whose workers each keep one fork server; rebuilt if a worker dies."""

    def __init__(self, jobs: int, settings: dict | None = None, unsandboxed: bool = False):
        import multiprocessing
        self.jobs = jobs
        self._context = multiprocessing.get_context("spawn")
        self._pool = None
        self._initargs = (settings or {}, unsandboxed)

    def submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=self._context, initializer=_init_pool_worker,
                                             initargs=self._initargs)
        return self._pool.submit(fn, *args)

    def warm(self) -> None:
        """Start every worker now (the pool starts one per task submitted, each starting its sandbox and importing
        torch in its initializer), so that they start while this process does something else."""
        for _ in range(self.jobs):
            self.submit(os.getpid)

    def broken(self, exc: BaseException) -> bool:
        """Whether `exc` means the pool died (its futures are lost, not failed): start a new one."""
        if isinstance(exc, BrokenProcessPool):
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            return True
        return False

    def as_completed(self, futures):
        return as_completed(futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A Dask distributed `Client` as the executor (its scheduler places the work)."""

    def __init__(self, address: str, timeout: float = 30):
        from distributed import Client
        self.client = Client(address, timeout=timeout, set_as_default=False)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False, retries=MAX_ATTEMPTS - 1)

    def broken(self, exc: BaseException) -> bool:
        return False  # Dask already retried (`retries`), also on a dead worker (KilledWorker)

    def as_completed(self, futures):
        from distributed import as_completed as dask_as_completed
        return dask_as_completed(list(futures), loop=self.client.loop)

    def close(self) -> None:
        self.client.close()


# -- the batch -------------------------------------------------------------------------------------------

@dataclass
class BatchSummary:
    total: int
    skipped: int        # already graded by an earlier run
    graded: int
    not_graded: dict    # student -> why (the grading process failed; retried next run)
    seconds: float


class _Progress:
    """A rich progress bar on a terminal; one plain line per submission otherwise (CI logs)."""

    def __init__(self, total: int, done: int, fancy: bool | None = None, quiet: bool = False):
        self.total, self.done, self.quiet = total, done, quiet
        self.fancy = sys.stderr.isatty() if fancy is None else fancy and not quiet
        self._bar = None
        if self.fancy:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self._bar = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[last]}"), console=Console(stderr=True))
            self._task = self._bar.add_task("grade", total=total, completed=done, last="")
            self._bar.start()

    def log(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def advance(self, student: str, data: dict | None, why: str = "") -> None:
        self.done += 1
        if data is None:
            line = f"not graded {student}: {why}"
        else:
            score = f"{data['score']:g}/{data['max_score']:g}"
            line = f"graded {student}: {score}" + (f" (error: {data['error']})" if data.get("error") else "")
        if self._bar is not None:
            self._bar.update(self._task, advance=1, last=line[:40])
            if data is None:
                self.log(line)
        elif not self.quiet or data is None:
            self.log(f"[{self.done}/{self.total}] {line}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


RUN_TMP_PREFIX = "autograder-grade-all-"   # + <pid>-: one temporary directory per run, for its workers


def _clean_temporaries(outdir: Path) -> None:
    """What a killed run left: temporary result files in OUTDIR (never results), and the temporary
    directory of any grade-all run whose process is gone (its workers' submission copies and sandbox
    homes, which a SIGKILL gave no chance to remove)."""
    import shutil
    import tempfile
    for tmp in outdir.glob(".*.tmp-*"):
        try:
            tmp.unlink()
        except OSError:
            pass
    for stale in Path(tempfile.gettempdir()).glob(f"{RUN_TMP_PREFIX}*-*"):
        try:
            pid = int(stale.name[len(RUN_TMP_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError, OSError):
            continue
        shutil.rmtree(stale, ignore_errors=True)


class _RunTemporaries:
    """One temporary directory for a run's pool workers (their TMPDIR): every submission copy and sandbox
    home they make lives in it, so it is removed in one piece when the run ends, by SIGTERM or SIGINT too
    (both unwind through `finally` here), and by the next run after a SIGKILL (`_clean_temporaries`)."""

    def __enter__(self) -> Path:
        import signal
        import tempfile
        self.path = Path(tempfile.mkdtemp(prefix=f"{RUN_TMP_PREFIX}{os.getpid()}-"))
        # tempfile caches its directory on first use: one first asked for during the run would stay the run's
        # folder (removed at the end) for the rest of this process. Restored on exit.
        self._old_tempdir = tempfile.tempdir
        os.chmod(self.path, 0o711)  # a sandbox user reaches its own home inside, lists nothing
        self._old_tmpdir = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = str(self.path)  # read by each spawned worker when it starts
        self._old_term = None
        if threading.current_thread() is threading.main_thread():
            def stop(signum, frame):
                raise SystemExit(128 + signum)
            self._old_term = signal.signal(signal.SIGTERM, stop)
        return self.path

    def __exit__(self, *exc) -> None:
        import shutil
        import signal
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
        if self._old_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = self._old_tmpdir
        import tempfile
        tempfile.tempdir = self._old_tempdir
        shutil.rmtree(self.path, ignore_errors=True)


def run_batch(root: Path, outdir: Path, *, jobs: int = 2, scheduler: str | None = None,
              assignments: list[str] | None = None, seeds=None, unsandboxed: bool = False,
              time_limit: float | None = None, regrade: bool = False, fancy: bool | None = None,
              progress: bool = True, executor=None, class_report: bool = True, config=None) -> BatchSummary:
    """Grade every submission under `root` not yet graded in `outdir` (see the module's docstring).
    `fancy`: a progress bar (default: when stderr is a terminal); `progress=False`: no line per submission.
    `config`: the run's settings (default: read from the environment); `seeds` default to its for-credit ones."""
    from autograder.core.config import Config
    from autograder.core.session import GradingSession
    from autograder.core.submission import write_json_atomic
    started = time.perf_counter()
    # Absolute before any task leaves this process: a worker resolves a relative path from its own directory.
    root, outdir = Path(root).resolve(), Path(outdir).resolve()
    config = config if config is not None else Config.from_env()
    seeds = seeds if seeds is not None else GradingSession(config, credit=True).seeds()
    settings = worker_settings(config)
    submissions = find_submissions(root, skip=(outdir,))   # refuses id collisions before anything is written
    outdir.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(outdir)
    hashes = {s.student: content_hash(s.path) for s in submissions}

    def done(s: Submission) -> bool:
        old = read_result(outdir / s.result_name)
        return old is not None and old.get("content_sha256") == hashes[s.student]

    todo = [s for s in submissions if regrade or not done(s)]
    progress = _Progress(len(submissions), len(submissions) - len(todo), fancy, quiet=not progress)
    if len(todo) < len(submissions):
        progress.log(f"{len(submissions) - len(todo)} of {len(submissions)} already graded in {outdir}: skipped")
    temporaries = _RunTemporaries()
    run_folder = temporaries.__enter__()
    try:
        executor = executor or (DaskExecutor(scheduler) if scheduler else PoolExecutor(max(1, jobs), settings,
                                                                                      unsandboxed))
    except BaseException:  # e.g. no scheduler at that address: TMPDIR must not stay pointed at the run's folder
        temporaries.__exit__(None, None, None)
        raise
    attempts = {s.student: 0 for s in todo}
    not_graded: dict[str, str] = {}
    graded = 0
    # grades.csv follows the results as they come (a killed run leaves it as complete as the results).
    students = [s.student for s in submissions]
    truths = None
    try:
        grades_csv = GradesCsv(outdir, students, {s: r for s in students
                                                  if (r := read_result(outdir / f"{s}.json")) is not None})
        grades_csv.write()
        # The truths depend on the seeds only: computed once, by the first worker to need them, and read by the
        # others (prepare_truths), so this process never imports torch. A private directory (0700) inside the
        # run's folder: hidden truths never outlive the run, nor a SIGKILL after the next run's cleanup.
        # (On a cluster, each worker computes its own once.)
        if todo and assignments and isinstance(executor, PoolExecutor):
            executor.warm()
            truths = tempfile.mkdtemp(prefix="truths-", dir=run_folder)
        pending = list(todo)
        while pending:
            futures = {}
            for s in pending:
                attempts[s.student] += 1
                futures[executor.submit(grade_one, str(s.path), s.student, assignments, seeds, time_limit,
                                        unsandboxed, settings, truths)] = s
            pending = []
            for future in executor.as_completed(futures):
                s = futures[future]
                try:
                    data = future.result()
                except BaseException as exc:  # noqa: the grading process failed, not the submission
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    lost = executor.broken(exc)
                    if lost and attempts[s.student] < MAX_ATTEMPTS:
                        pending.append(s)
                        continue
                    why = f"the grading process failed ({type(exc).__name__}: {str(exc)[:200]})"
                    not_graded[s.student] = why
                    progress.advance(s.student, None, why)
                    continue
                if data.get("error") and not data.get("max_score"):
                    data["max_score"] = _batch_max_score(outdir, submissions)
                write_json_atomic(outdir / s.result_name, data)
                grades_csv.update(s.student, json.loads(json.dumps(data)))  # as read back from the file
                grades_csv.write()
                graded += 1
                progress.advance(s.student, data)
    finally:
        progress.close()
        executor.close()
        temporaries.__exit__(None, None, None)  # the truths with it
    write_grades_csv(outdir, students)
    if class_report:  # what the class got wrong, from the results on disk (class_report.py)
        from autograder.frontends.class_report import write_class_report
        try:
            write_class_report(outdir)
        except Exception as exc:  # noqa: the grades are written; a report that fails must not lose them
            progress.log(f"class report not written: {type(exc).__name__}: {exc}")
    return BatchSummary(len(submissions), len(submissions) - len(todo), graded, not_graded,
                        time.perf_counter() - started)


def _batch_max_score(outdir: Path, submissions: list[Submission]) -> float:
    """The points a submission that could not be graded at all was out of, when no assignment was named:
    those of the batch's graded submissions (the most common maximum). 0 when none is graded yet."""
    from collections import Counter
    maxima = Counter(r["max_score"] for s in submissions if (r := read_result(outdir / s.result_name))
                     and not r.get("error") and r.get("max_score"))
    return maxima.most_common(1)[0][0] if maxima else 0.0


def write_grades_csv(outdir: Path, students: list[str], results: dict | None = None) -> Path:
    """grades.csv from the result files on disk (or `results`, those files already read): one row per
    student with a result, in ROOT's order."""
    if results is None:
        results = {s: r for s in students if (r := read_result(outdir / f"{s}.json")) is not None}
    return GradesCsv(outdir, students, results).write()


class GradesCsv:
    """grades.csv as a run's results come in (`update`, then `write`), each student's row built once.

    Rebuilding every row on every result made a run of N submissions cost N^2 rows, each of exact figures
    rounded: 0.65 s of grade-all's own CPU for 60 notebooks (measured), and N^2 grows 100x from 60 to 600.
    A row is built again only when its result changes or the columns do (an exercise seen for the first time)."""

    def __init__(self, outdir: Path, students: list[str], results: dict):
        self.outdir, self.students = outdir, students
        self.results = dict(results)
        self._rows: dict[str, tuple[tuple, list]] = {}

    def update(self, student: str, result: dict) -> None:
        self.results[student] = result
        self._rows.pop(student, None)

    def write(self) -> Path:
        from autograder.frontends.formats import csv_header, csv_row, to_csv
        results = {s: self.results[s] for s in self.students if s in self.results}
        # every exercise id, in the order first seen
        columns = tuple(dict.fromkeys(ex["id"] for r in results.values() for ex in r.get("exercises", [])))
        rows = []
        for student, result in results.items():
            cached = self._rows.get(student)
            if cached is None or cached[0] != columns:
                cached = self._rows[student] = (columns, csv_row(student, result, list(columns)))
            rows.append(cached[1])
        text = to_csv(rows, csv_header(list(columns)))
        target = self.outdir / RESULTS_CSV
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, target)
        return target


# -- the command -----------------------------------------------------------------------------------------

def cmd_grade_all(args) -> int:
    from autograder.core.session import GradingSession, refusal
    from autograder.core.config import for_command as config_for
    root = Path(args.root)
    if not root.is_dir():
        print(f"No such directory: {root}", file=sys.stderr)
        return 2
    config = config_for(args)
    try:  # refuse here, before any worker starts, with the same words as `autograder grade`
        probe = GradingSession(config, credit=True, start=False)
        seeds = probe.seeds()
        if not args.scheduler:  # (a cluster's workers check their own isolation)
            probe.open().close()
        find_submissions(root, skip=(Path(args.output),))
    except BatchError as exc:
        print(f"autograder grade-all: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not refusal(exc):
            raise
        print(f"autograder grade-all: refusing to grade for credit: {exc}", file=sys.stderr)
        return 2
    summary = run_batch(root, Path(args.output), jobs=args.jobs, scheduler=args.scheduler,
                        assignments=args.assignment, seeds=seeds, unsandboxed=args.unsandboxed,
                        time_limit=args.time_limit, regrade=args.regrade,
                        class_report=not args.no_class_report, config=config)
    per = summary.seconds / summary.graded if summary.graded else 0.0
    print(f"{summary.graded} graded, {summary.skipped} already done, {len(summary.not_graded)} not graded "
          f"of {summary.total} in {summary.seconds:.1f} s ({per:.2f} s per submission graded); "
          f"results in {args.output}/, summary in {Path(args.output) / RESULTS_CSV}", file=sys.stderr)
    for student, why in summary.not_graded.items():
        print(f"  not graded: {student}: {why} (run again to retry)", file=sys.stderr)
    return 1 if summary.not_graded else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("grade-all", help="grade every submission (folder, .zip or notebook) under ROOT")
    p.add_argument("root", help="one entry per student, named by the student's id")
    p.add_argument("-o", "--output", required=True, help="results: <id>.json per submission and grades.csv")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="grading processes on this machine")
    p.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786): grade on that cluster")
    p.add_argument("-a", "--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases (no AUTOGRADER_SECRET needed)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade even where no isolation mechanism works (every result says so)")
    p.add_argument("--time-limit", type=float, help="cap every case's time limit (seconds)")
    p.add_argument("--regrade", action="store_true", help="grade again what earlier runs already graded")
    p.add_argument("--no-class-report", action="store_true",
                   help="do not write class_report.html/.csv (what the class got wrong) into the output folder")
    p.set_defaults(func=cmd_grade_all)
