"""The instructor's nbgrader tools: the stub-aware solution clearing, parallel autograde, the cross-check
of the gradebook, the demo course, the class report, and their commands (all in the instructor's processes;
what runs in the student's kernel is `kernel`, the grading inside nbgrader's autograde `preprocessor`).

Commands: `autograder nbgrader-autograde ASSIGNMENT --jobs N` autogrades the submitted notebooks of a
course with N `nbgrader autograde` processes over disjoint sets of students (same gradebook, same
scores as one `nbgrader autograde`); `python -m autograder.integrations.nbgrader.course demo` runs the
instructor flow on a demo course in a temporary directory (what `make autograde` does).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.integrations.nbgrader.common import quiet as _quiet


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
                               session=None) -> dict[str, dict[str, float]]:
    """student -> {grade cell id -> points}: each submitted notebook graded as `autograder grade` grades it
    (the same conversion, pipeline and result as the course's preprocessor), to cross-check the gradebook.
    `session`: an open GradingSession (default: one fit for credit, from the environment)."""
    from contextlib import nullcontext
    from autograder.assignments import exercises
    from autograder.authoring.notebooks import grade_id
    from autograder.core.session import GradingSession
    from autograder.integrations.nbgrader.common import exercise_points
    course = Path(course).resolve()
    out: dict[str, dict[str, float]] = {}
    with (nullcontext(session) if session is not None else GradingSession(credit=True)) as session:
        with _quiet():
            for student in students or submitted_students(course, assignment):
                path = course / "submitted" / student / assignment / f"{assignment}.ipynb"
                if not path.is_file():
                    continue
                result = session.grade_submission(path, [assignment])
                by_id = {e.id: e for e in result.exercises}
                out[student] = {grade_id(ex.id): round(ex.points * exercise_points(by_id[ex.id]), 6)
                                if ex.id in by_id else 0.0 for ex in exercises(assignment)}
    return out


def verify(course: Path, assignment: str, students: list[str] | None = None, session=None,
           regraded: dict | None = None) -> list[str]:
    """The grade cells whose gradebook score differs from `autograder grade` on the submitted notebook."""
    recorded = gradebook_scores(course, assignment)
    if regraded is None:
        regraded = regrade_outside_the_kernel(course, assignment, students, session)
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
    from autograder.core.config import Config
    from autograder.core.session import GradingSession
    from autograder.sandbox import IsolationMissing
    config = Config.from_env()
    env = {"AUTOGRADER_SECRET": config.secret or f"demo-{os.urandom(8).hex()}"}
    try:
        GradingSession(config, credit=True, hidden=False, start=False).open().close()
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
    from autograder.core.session import GradingSession, refusal
    from autograder.core.config import for_command as config_for
    try:
        probe = GradingSession(config_for(args), credit=True, start=False)
        seeds = probe.seeds()
        probe.open().close()
    except Exception as exc:
        if not refusal(exc):
            raise
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
    from autograder.core.exercise import SECRET_ENV
    from autograder.core.session import GradingSession, refusal
    from autograder.core.config import for_command as config_for
    from autograder.integrations.nbgrader.preprocessor import _scrub_initial_environment, guard_process
    # This process hands the secret to nbgrader (its environment) and keeps it for --verify: no process of
    # the same user may read it from /proc/<this pid>/environ (the initial block) or anything else here.
    _scrub_initial_environment(SECRET_ENV)
    guard_process()
    config = config_for(args)
    try:  # refuse here, before any nbgrader process starts, with the same words as `autograder grade`
        GradingSession(config, credit=True, start=False).open().close()
    except Exception as exc:
        if not refusal(exc):
            raise
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
        with GradingSession(config, credit=True) as session:
            problems = verify(course, args.assignment, report["students"], session=session)
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
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.nbgrader.course")
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
