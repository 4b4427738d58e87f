"""`check()` in a notebook: grade the notebook's own definitions, show the table inline.

    from autograder import check
    check("backprop_ninja")

Objects defined in a notebook have no source file (`inspect.getsource` fails on them), so the source
comes from the cells the kernel ran (IPython's `In`): for every top-level `def`, `class`, import and
assignment, the last version run wins. From those, the module the assignment's files need is built:
the definitions the graders call (the exercises' entry points and what the drivers call on the module),
everything they use (transitively: helper functions, constants, imports), nothing else, so a cell that
imports torch to compare with does not break an exercise that refuses torch. The module is graded by
the same pipeline as `make check`, in the separate sandboxed process, on the public cases only; the
result is the same `GradeResult`, shown as an HTML table in Jupyter (plain text elsewhere).
"""
from __future__ import annotations

import ast
import atexit
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from autograder.core.result import GradeResult

_MODULE_ATTR = re.compile(r"\bmodule\.([A-Za-z][A-Za-z0-9_]*)")


class NotebookCheckError(ValueError):
    """The notebook cannot be graded as it is (no cells, unknown assignment)."""


@dataclass
class Definition:
    names: tuple[str, ...]
    source: str
    kind: str           # "import", "def", "assign"
    position: int       # order of the latest run
    uses: set = field(default_factory=set)
    cell: int = 0       # the cell's number in `In` (its prompt, `In [cell]`) and the segment's first line there
    line: int = 1


def _uses(node: ast.AST) -> set:
    """The global names a definition reads: for a def or class, the names it loads minus those it binds
    itself (arguments, locals), so that a local `loss` does not pull in the notebook's global `loss`."""
    nodes = list(ast.walk(node))  # once, for the four passes below
    loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return loaded
    bound = {n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {a.arg for a in nodes if isinstance(a, ast.arg)}
    bound |= {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and n is not node}
    return loaded - bound


def _start(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _segment(lines: list[str], node: ast.stmt) -> str:
    return "".join(lines[_start(node) - 1:node.end_lineno]).rstrip() + "\n"


def cell_definitions(cells: list[str], local_modules: set[str]) -> tuple[dict[str, Definition], list[str]]:
    """Name -> its latest top-level definition in `cells` (in the order run), and notes on cells skipped."""
    found: dict[str, Definition] = {}
    notes = []
    position = 0
    for number, cell in enumerate(cells):
        if not isinstance(cell, str) or not cell.strip():
            continue
        try:
            tree = ast.parse(cell)
        except SyntaxError as exc:
            notes.append(f"cell {number} left out: it does not parse ({exc.msg}, line {exc.lineno})")
            continue
        lines = cell.splitlines(keepends=True)
        for node in tree.body:
            position += 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names, kind = (node.name,), "def"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if isinstance(node, ast.ImportFrom) and node.level:
                    continue
                if (module or "").split(".")[0] in local_modules | {"autograder"}:
                    continue  # the assignment's own modules are the notebook itself
                names = tuple((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
                kind = "import"
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if not all(isinstance(t, ast.Name) for t in targets):
                    continue
                names, kind = tuple(t.id for t in targets), "assign"
            else:
                continue
            definition = Definition(names, _segment(lines, node), kind, position, _uses(node), number, _start(node))
            for name in names:
                found[name] = definition
    return found, notes


def needed_names(assignment: str) -> set[str]:
    """What the graders call on the student's module: each exercise's entry point, and every `module.X`
    in the assignment's student-side drivers."""
    from autograder.assignments import exercises
    names = {ex.entry.split(".")[0] for ex in exercises(assignment)}
    package = Path(__file__).parent.parent / "assignments" / assignment
    for path in package.glob("*_side.py"):
        names |= {m for m in _MODULE_ATTR.findall(path.read_text()) if not m.startswith("__")}
    return names


def build_module(cells: list[str], assignment: str, namespace: dict | None = None) -> tuple[str, list[str]]:
    """The source of one module holding what the assignment needs from the notebook, and notes."""
    source, notes, _ = build_module_mapped(cells, assignment, namespace)
    return source, notes


def build_module_mapped(cells: list[str], assignment: str, namespace: dict | None = None):
    """`build_module`, and for every line of the module the (cell, line) of the notebook it comes from
    (None for the blank lines between definitions): the student has cells, not a file."""
    from autograder.assignments import exercises
    local = {f.split("/")[0].removesuffix(".py") for ex in exercises(assignment) for f in ex.required_files}
    found, notes = cell_definitions(cells, local)
    if namespace is not None:  # a name deleted since (`del f`) is not the notebook's any more
        found = {k: v for k, v in found.items() if k in namespace}
    wanted = [n for n in sorted(needed_names(assignment)) if n in found]
    missing = sorted(needed_names(assignment) - set(found))
    keep: dict[int, Definition] = {}
    frontier = list(wanted)
    seen = set()
    while frontier:
        name = frontier.pop()
        if name in seen or name not in found:
            continue
        seen.add(name)
        definition = found[name]
        keep[id(definition)] = definition
        frontier.extend(definition.uses - seen)
    if missing:
        notes.append("not defined in this notebook (yet): " + ", ".join(missing))
    chosen = sorted(keep.values(), key=lambda d: (d.kind != "import", d.position))
    lines: list = []
    for i, d in enumerate(chosen):
        if i:
            lines.append(None)  # the "\n" that joins two definitions
        lines.extend((d.cell, d.line + k) for k in range(d.source.count("\n")))
    return "\n".join(d.source for d in chosen), notes, lines


_FILE_LINE = re.compile(r"(?P<file>[\w./-]+\.py), line (?P<line>\d+)")
_AT_LINE = re.compile(r"\bat line (?P<line>\d+)")


def in_cells(text: str, primary: str, lines: list) -> str:
    """`text` with the module's places (`graphs.py, line 10`, ninja's `at line 10`) said as the notebook's
    (`cell [3], line 4`); places in other files are left as they are."""
    def cell_of(number: str) -> str | None:
        k = int(number) - 1
        place = lines[k] if 0 <= k < len(lines) else None
        return f"cell [{place[0]}], line {place[1]}" if place else None

    def file_line(match):
        if not primary.endswith(match["file"]) and not match["file"].endswith(primary):
            return match[0]
        return cell_of(match["line"]) or match[0]

    def at_line(match):
        place = cell_of(match["line"])
        return f"at {place}" if place else match[0]
    return _AT_LINE.sub(at_line, _FILE_LINE.sub(file_line, text or "")) if text else text


def _say_cells(result: GradeResult, primary: str, lines: list) -> None:
    for ex in result.exercises:
        ex.message, ex.where = in_cells(ex.message, primary, lines), in_cells(ex.where, primary, lines)
        for c in ex.checks:
            c.message, c.hint = in_cells(c.message, primary, lines), in_cells(c.hint, primary, lines)


def write_submission(directory: Path, assignment: str, module_source: str) -> str:
    """The files the assignment's exercises need: the first holds the notebook's module, the others take
    everything from it (`from <first> import *`). Returns the first's path (relative)."""
    from autograder.assignments import exercises
    files = []
    for ex in exercises(assignment):
        for f in ex.required_files:
            if f.endswith(".py") and f not in files:
                files.append(f)
    primary = files[0]
    primary_module = primary[:-3].replace("/", ".")
    for f in files:
        path = directory / f
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(directory).parents:
            if str(parent) != "." and not (directory / parent / "__init__.py").exists():
                (directory / parent / "__init__.py").write_text("")
        path.write_text(module_source if f == primary else f"from {primary_module} import *  # noqa\n")
    return primary


# -- the grading worker, one per kernel ---------------------------------------------------------------------

_session = None
_lock = threading.Lock()


def _shared_session():
    """The kernel's grading session (public cases; the strongest sandbox here, or none and it says so)."""
    global _session
    with _lock:
        if _session is None:
            from autograder.core.session import GradingSession
            _session = GradingSession().open()
            atexit.register(_session.close)
        return _session


# -- the result, shown inline -----------------------------------------------------------------------------

class Checked:
    """What `check()` returns: the `GradeResult` (`.result`), shown as an HTML table by Jupyter and as
    the terminal's table by `print` or a plain Python prompt."""

    def __init__(self, result: GradeResult, notes: list[str]):
        self.result = result
        self.notes = notes
        self.history = ""   # what changed since the last check() of this assignment (history.py)

    @property
    def score(self) -> float:
        return self.result.score

    def _repr_html_(self) -> str:
        from autograder.frontends.report import _e, table_html
        notes = "".join(f"<p style=\"color:#57606a\">{_e(n)}</p>" for n in self.notes)
        history = f"<p style=\"color:#0969da\">{_e(self.history)}</p>" if self.history else ""
        return notes + table_html(self.result) + history

    def __repr__(self) -> str:
        import io

        from rich.console import Console

        from autograder.frontends.render import to_terminal
        buffer = io.StringIO()
        to_terminal(self.result, Console(file=buffer, width=100, force_terminal=False, force_jupyter=False,
                                        color_system=None))
        return "\n".join(self.notes + [buffer.getvalue().rstrip()] + ([self.history] if self.history else []))


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _history(assignment: str, result: GradeResult) -> str:
    """The history line, kept beside the notebook (the kernel's working directory), one file per assignment."""
    from autograder.frontends.history import record_line
    return record_line(Path.cwd(), result, f"last-notebook-{assignment}.json")


def guess_assignment(cells: list[str]) -> str:
    from autograder.assignments import NAMES
    found, _ = cell_definitions(cells, set())
    scores = {name: len(needed_names(name) & set(found)) for name in NAMES}
    best = max(scores, key=scores.get)
    if not scores[best]:
        raise NotebookCheckError("nothing to grade: no function or class of an assignment is defined in this "
                                 f"notebook; say which: check({' | '.join(repr(n) for n in NAMES)})")
    return best


def check(assignment: str | None = None, *, cells: list[str] | None = None, namespace: dict | None = None,
          runner=None) -> Checked:
    """Grade this notebook's definitions for `assignment` on the public cases and show the table.

    `cells` (the sources run, in order) and `namespace` default to the running IPython kernel's `In`
    and user namespace. `runner`: grade on this runner (borrowed) instead of the kernel's own."""
    from autograder.assignments import NAMES, exercises
    shell = _ipython()
    if cells is None:
        if shell is None:
            raise NotebookCheckError("check() grades a notebook's cells: run it in Jupyter (or IPython), or "
                                     "pass cells=[...]; for files use `autograder check`")
        cells = list(shell.user_ns.get("In", []))
        namespace = shell.user_ns if namespace is None else namespace
    assignment = assignment or guess_assignment(cells)
    if assignment not in NAMES:
        raise NotebookCheckError(f"unknown assignment {assignment!r}: one of {', '.join(NAMES)}")
    source, notes, lines = build_module_mapped(cells, assignment, namespace)
    from autograder.core.session import GradingSession
    session = GradingSession(runner=runner) if runner is not None else _shared_session()
    with tempfile.TemporaryDirectory(prefix="backprop-lab-notebook-") as tmp:
        primary = write_submission(Path(tmp), assignment, source)
        result = session.grade(Path(tmp), exercises(assignment), hidden=False)
    result.submission = "this notebook"
    _say_cells(result, primary, lines)
    checked = Checked(result, notes)
    checked.history = _history(assignment, result)
    if shell is None:  # a plain script: nothing displays the return value
        print(repr(checked))
    return checked
