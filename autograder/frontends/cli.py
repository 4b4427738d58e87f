"""The `autograder` command: `check` for students, `grade` for CI, and the instructor tools."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

DEFAULT_DIR = "student_template"


def _exercises_for(submission: Path, names: list[str] | None):
    from autograder.assignments import detect, exercises
    chosen = names or detect(submission)
    return chosen, [ex for name in chosen for ex in exercises(name)]


def not_found(submission: Path, graded: list[str]) -> list[tuple[str, list[str], float, list[str]]]:
    """The course's assignments `check` did not grade because their files are not in the submission:
    (assignment, the files expected and missing, its points, files there with a close name (`graph.py` for
    `graphs.py`)), so that the total is out of the whole course and a misnamed file is not taken for done."""
    import difflib
    from fractions import Fraction

    from autograder.assignments import NAMES, exercises
    import itertools
    # a bounded look (a student's repository may hold a large tree): enough to spot `graph.py`
    present = [p.relative_to(submission).as_posix() for p in itertools.islice(
        (p for p in submission.rglob("*.py") if ".venv" not in p.parts and "__pycache__" not in p.parts), 500)]
    out = []
    for name in NAMES:
        if name in graded:
            continue
        exs = exercises(name)
        files = sorted({f for ex in exs for f in ex.required_files})
        missing = [f for f in files if not (submission / f).is_file()]
        close = sorted({c for f in missing for c in difflib.get_close_matches(f, present, n=2, cutoff=0.8)})
        out.append((name, missing or files, sum((Fraction(ex.points) for ex in exs), Fraction(0)), close))
    return out


def config_for(args):
    """The run's configuration: the environment, read once by `main`, with this command's flags on top."""
    from autograder.core.config import for_command
    return for_command(args)


def check_session(args):
    """The session of `check` and `watch`: public cases, the strongest sandbox here (or none, and it says so)."""
    from autograder.core.session import GradingSession
    return GradingSession(config_for(args), cache_truths=True)


def cmd_check(args) -> int:
    from rich.console import Console
    from rich.text import Text
    console = Console()
    # In this repository the default is student_template/; in a student's own repository, the current one.
    submission = Path(args.dir or (DEFAULT_DIR if Path(DEFAULT_DIR).is_dir() else "."))
    if not submission.is_dir():
        console.print(Text("No such directory: ", style="bold red") + Text(str(submission)))
        return 2
    with check_session(args) as session:  # its worker imports torch while this process does too
        from autograder.frontends.render import render_error, render_exercise, total_line
        names, exs = _exercises_for(submission, args.assignment)
        # Asked for one assignment (-a): that one is the whole; else the whole course is.
        absent = [] if args.assignment else not_found(submission, names)
        if not exs:
            console.print(Text(f"Nothing to grade in {submission}", style="bold red")
                          + Text(": no assignment files found (expected "
                                 + "; ".join(", ".join(files) for _, files, _, _ in absent) + ")"))
            for line in not_found_lines(absent):
                console.print(line)
            return 2
        # Live: each exercise's table as soon as it is graded, and a progress line while one runs
        # (a spinner on a terminal; nothing extra in a log or a pipe).
        kept: dict = {}  # the public cases' outputs, for the worked element under a wrong gradient
        with _progress(console) as status:
            result = session.grade(submission, exs, hidden=False, keep_outputs=kept,
                                   on_start=lambda ex: status(f"grading {ex.id}…"),
                                   on_exercise=lambda done: render_exercise(done, console, kept.get(done.id)))
    render_error(result, console)
    for line in not_found_lines(absent):
        console.print(line)
    console.print(total_line(result, not_graded=absent))
    print_history(submission, result, console)
    return 0


def print_history(folder: Path, result, console) -> None:
    """The "fixed: ...; newly wrong: ...; score a -> b" line against the student's last run (history.py)."""
    from autograder.frontends.history import record_line
    from autograder.frontends.render import history_text
    text = record_line(folder, result)
    if text:
        console.print(history_text(text))


def not_found_lines(absent) -> list:
    """One line per assignment whose files are missing: the files, the points, a close name found instead."""
    from rich.text import Text

    from autograder.frontends.formats import fmt
    lines = []
    for name, files, points, close in absent:
        line = Text(f"{name}: ", style="bold") + Text(f"{', '.join(files)} not found", style="bold red") \
            + Text(f" ({fmt(points)} points not graded)")
        if close:
            line += Text(f"; found {', '.join(close)}: rename it to {files[0]}?" if len(files) == 1 and len(close) == 1
                         else f"; found {', '.join(close)}", style="yellow")
        lines.append(line)
    return lines


@contextlib.contextmanager
def _progress(console):
    """A callable that shows a one-line status under what is printed (rich's live status on a terminal)."""
    if not console.is_terminal:
        yield lambda text: None
        return
    with console.status("", spinner="dots") as live:
        yield lambda text: live.update(text)


def cmd_grade(args) -> int:
    from autograder.core.session import GradingSession, refusal
    from autograder.frontends.render import FORMATS
    protect = [Path(args.output).resolve().parent] if args.output else []
    try:
        session = GradingSession(config_for(args), credit=True, protect=protect).open()
    except Exception as exc:
        if not refusal(exc):
            raise
        print(f"autograder grade: refusing to grade for credit: {exc}", file=sys.stderr)
        return 2
    with session:
        result = session.grade_submission(Path(args.path), args.assignment)
    text = FORMATS[args.format](result)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, out)
    else:
        sys.stdout.write(text)
    return 0


def cmd_templates(args) -> int:
    from autograder.authoring.templating import EditedFiles, generate
    try:
        changed = generate(Path(args.root), check=args.check, force=args.force)
    except EditedFiles as exc:
        for path in exc.changed:
            print(("kept (edited): " if path in exc.paths else "wrote ") + str(path))
        print(exc)
        return 1
    for path in changed:
        print(("out of date: " if args.check else "wrote ") + str(path))
    return 1 if (args.check and changed) else 0


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    from autograder.assignments import NAMES
    from autograder.frontends.render import FORMATS
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="grade a submission on the public cases, with a report for the terminal")
    p.add_argument("dir", nargs="?", help=f"the submission directory (default: {DEFAULT_DIR}/ if present, else .)")
    p.add_argument("-a", "--assignment", action="append", choices=NAMES, help="only this assignment (repeatable)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", help="grade a submission (dir, .zip or notebook) on public and hidden cases")
    p.add_argument("path")
    p.add_argument("-f", "--format", default="json", choices=sorted(FORMATS))
    p.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    p.add_argument("-a", "--assignment", action="append", choices=NAMES, help="only this assignment (repeatable)")
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases (no AUTOGRADER_SECRET needed)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade even where no isolation mechanism works (every result says so)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("templates", help="generate student_template/ from reference/")
    p.add_argument("--root", default=".")
    p.add_argument("--check", action="store_true", help="only report generated files that are out of date")
    p.add_argument("--force", action="store_true", help="overwrite generated files even where they were edited")
    p.set_defaults(func=cmd_templates)

    for register in _extensions() if extensions else ():
        register(sub)
    return parser


# Subcommands that live with their feature: module -> its `register(subparsers)`.
EXTENSIONS = ("autograder.integrations.batch", "autograder.integrations.nbgrader.course",
              "autograder.integrations.gradescope", "autograder.frontends.report",
              "autograder.frontends.class_report", "autograder.frontends.watch")


def _extensions():
    """Subcommands that live with their feature (batch grading, nbgrader, Gradescope)."""
    import importlib
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module is there, something it needs is not: say so
                raise
            continue
        yield module.register


CORE_COMMANDS = {"check", "grade", "templates"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The feature modules (nbgrader, batch, Gradescope) load only for their own commands and --help.
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(extensions=command not in CORE_COMMANDS).parse_args(argv)
    from autograder.core.config import Config, ConfigError
    try:
        args.config = Config.from_env()  # the environment, read once for the whole command
    except ConfigError as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2
    return args.func(args)


def run(argv: list[str] | None = None) -> None:
    """The command line's entry point (`autograder`, `python -m autograder`): `main`, then, where torch is
    loaded, an exit that skips the interpreter's teardown (about 1 s with torch loaded: a bare
    `python -c "import torch"` spends a quarter of its time there). All that a normal exit does for this
    program happens first: output flushed, atexit handlers run (a grading session closed, the runtime copy
    removed). An exception (Ctrl-C, argparse's exit) leaves the normal way."""
    code = main(argv)
    if "torch" not in sys.modules:
        sys.exit(code)
    import atexit
    import os

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`check | head`): nothing more can be written there
                pass
    flush()  # what main printed, before anything a handler prints
    atexit._run_exitfuncs()
    flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":
    run()
