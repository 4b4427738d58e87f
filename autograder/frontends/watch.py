"""`autograder watch [SUB] [-a ...]`: regrade on every save, only what the edit can have changed.

One warm sandboxed runner (its fork server has torch imported) is kept open for the whole session, and
the truths of every case are computed once (pipeline.prepared_cases caches them in this process), so a
save costs only the student's run and the judging of the exercises it touches.

What a save touches is decided from the source, not from timestamps alone: every top-level function and
class of the submission's Python files is fingerprinted by its AST (comments and layout do not count),
and an exercise is regraded when a definition reachable from its entry points changed. Reachable means
the call graph read from the AST: the global names a definition loads, followed transitively across the
submission's files (by name; a name defined in two files counts as both, which can only regrade more).
Anything that is not a definition (imports, constants, a line that does not parse) counts as a change of
its whole file. Files are polled (mtime and size, every `--interval` seconds): no extra dependency, and
it works the same on every platform and on network drives.
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

POLL_SECONDS = 0.2
SETTLE_SECONDS = 0.05      # an editor may write a file in several steps: wait until it is quiet
MODULE_LEVEL = "<module>"  # a file's statements that are not definitions
_MODULE_ATTR = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_]*)")


# -- what the source defines, and what uses what ----------------------------------------------------------

@dataclass
class Source:
    """One file: each top-level definition's AST fingerprint and the global names it loads."""
    path: str
    fingerprints: dict = field(default_factory=dict)   # name -> hash of its AST
    uses: dict = field(default_factory=dict)            # name -> global names it loads
    error: str = ""                                     # why it does not parse


def _loads(node: ast.AST) -> set:
    """The global names a definition reads: the names it loads minus what it binds itself (arguments, locals),
    and the attributes of `self`/the module it reads (a method calling `self.helper()` where helper is global
    is rare, but `module.f` style calls are cheap to include)."""
    loaded = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
    return (loaded - bound) | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def read_source(path: Path) -> Source:
    out = Source(str(path))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text, filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        # the whole file changed, as far as anyone can tell
        out.fingerprints[MODULE_LEVEL] = hashlib.sha256(out.error.encode() + _raw(path)).hexdigest()
        return out
    rest = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.fingerprints[node.name] = hashlib.sha256(ast.dump(node).encode()).hexdigest()
            out.uses[node.name] = _loads(node)
        elif isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
            continue  # the module's docstring
        elif isinstance(node, ast.If) and _is_main_block(node):
            continue  # `if __name__ == "__main__":` never runs under the grader
        else:
            rest.append(ast.dump(node))
    out.fingerprints[MODULE_LEVEL] = hashlib.sha256("\n".join(rest).encode()).hexdigest()
    return out


def _raw(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _is_main_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def python_files(submission: Path) -> list[Path]:
    """The submission's Python files, as the runner would copy them (no caches, venvs, our own folder)."""
    from autograder.frontends.history import FOLDER
    from autograder.sandbox import SKIP_DIRS
    found = []
    for dirpath, dirnames, filenames in os.walk(submission):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d != FOLDER and not d.startswith(".")
                             and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg")))
        found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return found


def _driver_file(module_name: str) -> Path:
    """A driver module's file, found without importing it (as the runner finds it to stage it)."""
    import importlib.util
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"driver module {module_name} not found")
    return Path(spec.origin)


def roots_of(exercise) -> set:
    """The names an exercise's run starts from: its entry point and what its driver calls on the module."""
    roots = {exercise.entry.split(".")[0]}
    module_name, function = exercise.driver.split(":")
    try:
        tree = ast.parse(_driver_file(module_name).read_text())
    except (OSError, SyntaxError, ValueError, ImportError):
        return roots
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    # the driver and the driver-side helpers it calls
    seen, frontier = set(), [function]
    while frontier:
        name = frontier.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        text = ast.unparse(defs[name])
        roots |= set(_MODULE_ATTR.findall(text))
        frontier += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)]
    return roots


def reachable(roots: set, sources: dict[str, Source]) -> set:
    """(file, name) pairs reachable from `roots` through the call graph; every file's module level is
    reached (imports and constants run when the module loads)."""
    by_name: dict[str, list[str]] = {}
    for path, src in sources.items():
        for name in src.fingerprints:
            by_name.setdefault(name, []).append(path)
    out = {(path, MODULE_LEVEL) for path in sources}
    frontier = list(roots)
    seen = set()
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        for path in by_name.get(name, ()):
            out.add((path, name))
            frontier.extend(sources[path].uses.get(name, ()))
    return out


def changed_names(before: dict[str, Source], after: dict[str, Source]) -> set:
    """(file, name) pairs whose definition is new, gone or different."""
    out = set()
    for path in set(before) | set(after):
        a = before.get(path, Source(path)).fingerprints
        b = after.get(path, Source(path)).fingerprints
        out |= {(path, name) for name in set(a) | set(b) if a.get(name) != b.get(name)}
        if (path in before) != (path in after):
            out.add((path, MODULE_LEVEL))
    return out


def affected(exercises: list, changed: set, sources: dict[str, Source], submission: Path) -> list:
    """The exercises whose run can see a changed definition (in the order given)."""
    out = []
    for ex in exercises:
        files = {str(submission / f) for f in ex.required_files}
        # an exercise's own files' module level, and everything reachable from its entry points
        reach = reachable(roots_of(ex), sources)
        if any(pair in reach or (pair[1] == MODULE_LEVEL and pair[0] in files) for pair in changed):
            out.append(ex)
    return out


def scan(submission: Path) -> dict[str, Source]:
    return {str(p): read_source(p) for p in python_files(submission)}


def stamps(submission: Path) -> dict[str, tuple]:
    out = {}
    for p in python_files(submission):
        try:
            st = p.stat()
        except OSError:
            continue
        out[str(p)] = (st.st_mtime_ns, st.st_size)
    return out


# -- the loop -------------------------------------------------------------------------------------------

class Watcher:
    """Keeps the latest result of every exercise; `regrade(changed)` grades only the affected ones and
    prints their tables, the total over all, and what changed since the last run."""

    def __init__(self, submission: Path, exercises: list, session, console, kept: dict | None = None):
        """`session`: an open GradingSession (its warm worker regrades every change)."""
        self.submission, self.exercises, self.session, self.console = submission, exercises, session, console
        self.results: dict = {}
        self.sources: dict[str, Source] = {}
        self.kept = kept if kept is not None else {}

    def grade(self, exercises: list) -> None:
        from autograder.frontends.cli import _progress
        from autograder.frontends.render import render_exercise
        from autograder.core.result import GradeResult
        started = time.perf_counter()
        for ex in exercises:
            self.kept.pop(ex.id, None)

        with _progress(self.console) as status:
            result = self.session.grade(self.submission, exercises, hidden=False, keep_outputs=self.kept,
                                        on_start=lambda ex: status(f"grading {ex.id}…"),
                                        on_exercise=lambda done: render_exercise(done, self.console, self.kept.get(done.id)))
        for ex in result.exercises:
            self.results[ex.id] = ex
        whole = GradeResult(str(self.submission), exercises=[self.results[e.id] for e in self.exercises
                                                             if e.id in self.results],
                            hidden=False, sandbox=result.sandbox, seconds=time.perf_counter() - started)
        from autograder.frontends.render import history_text, render_error, total_line
        render_error(result, self.console)
        self.console.print(total_line(whole))
        from autograder.frontends.history import record_line
        text = record_line(self.submission, whole)
        if text:
            self.console.print(history_text(text))

    def first(self) -> None:
        self.sources = scan(self.submission)
        self.grade(self.exercises)

    def on_change(self) -> list:
        """Re-read the sources; grade what changed. Returns the exercises regraded."""
        from rich.text import Text
        now = scan(self.submission)
        changed = changed_names(self.sources, now)
        self.sources = now
        stamp = time.strftime("%H:%M:%S")
        if not changed:
            self.console.print(Text(f"[{stamp}] saved; no code changed (comments or layout only)", style="dim"))
            return []
        todo = affected(self.exercises, changed, now, self.submission)
        names = sorted({name if name != MODULE_LEVEL else f"{Path(path).name} (module level)"
                        for path, name in changed})
        broken = [f"{Path(p).name}: {s.error}" for p, s in now.items() if s.error]
        head = Text(f"[{stamp}] changed: {', '.join(names)}", style="bold")
        if not todo:
            self.console.print(head + Text(" — no exercise uses it; nothing to regrade", style="dim"))
            return []
        self.console.print(head + Text(f" — regrading {', '.join(ex.id for ex in todo)}", style="dim"))
        for line in broken:
            self.console.print(Text(f"  ! {line}", style="red"))
        self.grade(todo)
        return todo


def watch(submission: Path, exercises: list, session, console, interval: float = POLL_SECONDS,
          max_changes: int | None = None) -> None:
    """Grade everything once, then regrade on every change until interrupted (or `max_changes` regrades)."""
    from rich.text import Text
    watcher = Watcher(submission, exercises, session, console)
    watcher.first()
    seen = stamps(submission)
    console.print(Text(f"watching {submission} for changes (Ctrl-C to stop)", style="bold cyan"))
    count = 0
    while max_changes is None or count < max_changes:
        time.sleep(interval)
        now = stamps(submission)
        if now == seen:
            continue
        time.sleep(SETTLE_SECONDS)
        settled = stamps(submission)
        while settled != now:
            now = settled
            time.sleep(SETTLE_SECONDS)
            settled = stamps(submission)
        seen = settled
        watcher.on_change()
        console.print(Text(f"watching {submission} for changes (Ctrl-C to stop)", style="bold cyan"))
        count += 1


def cmd_watch(args) -> int:
    from rich.console import Console
    from rich.text import Text

    from autograder.core.session import GradingSession
    from autograder.frontends.cli import DEFAULT_DIR, _exercises_for, config_for
    console = Console()
    submission = Path(args.dir or (DEFAULT_DIR if Path(DEFAULT_DIR).is_dir() else "."))
    if not submission.is_dir():
        console.print(Text("No such directory: ", style="bold red") + Text(str(submission)))
        return 2
    _, exs = _exercises_for(submission, args.assignment)
    if not exs:
        console.print(Text(f"Nothing to watch in {submission}", style="bold red")
                      + Text(": no assignment files found (expected e.g. micrograd/engine.py, backprop_ninja.py "
                             "or graphs.py)"))
        return 2
    session = GradingSession(config_for(args)).open()  # one warm worker for the whole session
    try:
        watch(submission, exs, session, console, interval=args.interval)
    except KeyboardInterrupt:
        console.print(Text("stopped watching", style="dim"))
    finally:
        session.close()
    return 0


def _seconds(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.01 <= value <= 60:
        raise argparse.ArgumentTypeError(f"between 0.01 and 60 seconds, not {text}")
    return value


def register(subparsers) -> None:
    from autograder.assignments import NAMES
    p = subparsers.add_parser("watch", help="regrade on every save, only the exercises your edit touches")
    p.add_argument("dir", nargs="?", help="the submission directory (default: student_template/ if present, else .)")
    p.add_argument("-a", "--assignment", action="append", choices=NAMES, help="only this assignment (repeatable)")
    p.add_argument("--interval", type=_seconds, default=POLL_SECONDS, help="seconds between looks at the files")
    p.set_defaults(func=cmd_watch)

