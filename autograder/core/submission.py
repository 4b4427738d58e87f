"""Submissions as they arrive: a directory, a `.zip`, or a Jupyter notebook, always graded from a
private copy in a work directory.

- A directory is copied (links refused, size and file count limited), so what is graded cannot
  change under the grader nor point at files outside the submission (e.g. the reference solutions).
- A zip is extracted member by member: absolute paths, `..`, links, too many files, too many bytes
  (counted while decompressing, not trusted from the header) and zip bombs are refused.
- A notebook's code cells become the assignment's module file(s). Which assignment, and which file,
  is decided by the entry points the code defines (`class Value`, `def manual_backward`...). Kept:
  imports, functions, classes, literal constants, and every other top-level statement that sets a name
  the kept code uses, transitively (`sigmoid = lambda ...`, `DTYPE = torch.float64`); left out: the
  rest (training loops, prints, `cmp` calls would otherwise run at every import), named at the top of
  the module and, where it explains a lost point, in the exercise's message; so is a name used before
  its cell defines it, or defined twice and run out of the notebook's order.
- A directory (or zip) holding one folder, one notebook or one zip is unwrapped.

A malformed submission is never a crash: it becomes a `GradeResult` with score 0 and an `error`.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from autograder.core.result import GradeResult  # not the pipeline (torch): grade-all's coordinator imports this

MAX_FILES = 2000                 # files in one submission
MAX_BYTES = 64 * 1024 * 1024     # bytes of one submission, uncompressed
MAX_RATIO = 100                  # compression ratio of one zip member above which it is a bomb
RATIO_FLOOR = 1024 * 1024        # ... when it is larger than this (text compresses ~5-10x)
SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".venv", "__MACOSX",
             ".backprop-lab"}  # the student's own record of their last check (history.py): never graded
SKIP_FILES = {".DS_Store"}
NOTEBOOK_MODULE_HEADER = ("# Generated from the code cells of {name} by the autograder: imports, def, class, and the\n"
                          "# top-level statements that set a name they use (demo code, prints and plots are left out).\n")


class SubmissionError(Exception):
    """The submission cannot be graded as it is (missing, not a zip, unsafe paths...)."""


# -- directories --------------------------------------------------------------------------------------

def copy_tree(source: Path, target: Path) -> Path:
    """Copy a submission directory, refusing links and enforcing the size and file-count limits."""
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in dirnames + filenames:
            if (here / name).is_symlink():
                raise SubmissionError(f"{rel_dir / name} is a symbolic link: submissions may not contain links")
        (target / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            if name in SKIP_FILES:
                continue
            st = os.lstat(here / name)
            if not stat.S_ISREG(st.st_mode):
                raise SubmissionError(f"{rel_dir / name} is not a regular file")
            files += 1
            total += st.st_size
            _check_limits(files, total)
            shutil.copyfile(here / name, target / rel_dir / name, follow_symlinks=False)
    return target


def _check_limits(files: int, total: int) -> None:
    if files > MAX_FILES:
        raise SubmissionError(f"more than {MAX_FILES} files in the submission")
    if total > MAX_BYTES:
        raise SubmissionError(f"the submission is larger than {MAX_BYTES // 2**20} MB")


# -- zips -----------------------------------------------------------------------------------------------

def _safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a zip member may be extracted to; None for entries to skip."""
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise SubmissionError(f"the zip contains an absolute path: {name!r}")
    if ".." in path.parts:
        raise SubmissionError(f"the zip contains a path that leaves its folder: {name!r}")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or SKIP_DIRS & set(parts[:-1]) or parts[0] in SKIP_DIRS or parts[-1] in SKIP_FILES:
        return None
    return PurePosixPath(*parts)


def extract_zip(path: Path, target: Path) -> Path:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise SubmissionError(f"{path.name} is not a valid zip file") from None
    except OSError as exc:
        raise SubmissionError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    target.mkdir(parents=True, exist_ok=True)
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_FILES:
            raise SubmissionError(f"the zip has {len(infos)} entries (more than {MAX_FILES})")
        _check_limits(0, sum(i.file_size for i in infos))
        total = files = 0
        for info in infos:
            rel = _safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SubmissionError(f"the zip contains a symbolic link: {info.filename!r}")
            if rel is None:
                continue
            dest = target.joinpath(*rel.parts)
            if not dest.resolve().is_relative_to(target.resolve()):
                raise SubmissionError(f"the zip contains a path that leaves its folder: {info.filename!r}")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise SubmissionError(f"{info.filename!r} expands {info.file_size // max(info.compress_size, 1)}x: "
                                      "refusing a zip bomb")
            files += 1
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, open(dest, "wb") as out:
                    while chunk := src.read(1 << 16):  # count real bytes: headers can lie
                        total += len(chunk)
                        _check_limits(files, total)
                        out.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, ValueError) as exc:
                raise SubmissionError(f"cannot extract {info.filename!r}: {exc}") from None
    return target


# -- notebooks ------------------------------------------------------------------------------------------

def notebook_cells(path: Path) -> list[tuple[str, int | None]]:
    """(source, execution count) of every code cell of a notebook, IPython magics and shell lines
    commented out."""
    import nbformat
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises many kinds: JSON, schema, encoding
        raise SubmissionError(f"{path.name} is not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = [("# " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        count = cell.get("execution_count")
        cells.append(("\n".join(lines), count if isinstance(count, int) and not isinstance(count, bool) else None))
    return cells


def notebook_code(path: Path) -> list[str]:
    """The source of every code cell of a notebook, IPython magics and shell lines commented out."""
    return [source for source, _ in notebook_cells(path)]


def _is_import(node: ast.stmt) -> bool:
    """An import the module keeps: any but the grader's own (a course notebook's grade cells import
    `autograder`, which the student's process must not need)."""
    if isinstance(node, ast.Import):
        return not any(alias.name.split(".")[0] == "autograder" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] != "autograder" or node.level > 0
    return False


def _is_literal_assignment(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
            return True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    return False


def _is_main_block(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (demo code by convention)."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) \
        and test.left.id == "__name__"


def _module_scope(node: ast.AST):
    """The nodes of `node` that run at module level: not the bodies of functions, lambdas or classes."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.extend(child.decorator_list if not isinstance(child, ast.Lambda) else [])
                stack.extend(getattr(child.args, "defaults", []) + [d for d in getattr(child.args, "kw_defaults", []) if d])
            elif isinstance(child, ast.ClassDef):
                stack.extend(child.decorator_list + child.bases + [k.value for k in child.keywords])
            else:
                stack.append(child)


def _binds(node: ast.stmt) -> tuple[set[str], set[str]]:
    """(names the statement binds at module level, names it assigns into: `d[k] = v`, `Value.f = g`)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}, set()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}, set()
    binds, into = set(), set()
    for n in _module_scope(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            binds.add(n.id)
        elif isinstance(n, (ast.Attribute, ast.Subscript)) and isinstance(n.ctx, (ast.Store, ast.Del)):
            base = n.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                into.add(base.id)
    return binds, into


def _uses(node: ast.stmt) -> set[str]:
    """The global names a statement reads (a def's or class's own locals and arguments excluded)."""
    from autograder.integrations.notebook_check import _uses as uses
    return uses(node)


def _eager_uses(node: ast.stmt) -> set[str]:
    """The names a statement reads when the module is imported (not those read inside function bodies)."""
    return {n.id for n in _module_scope(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _imports_from(node: ast.stmt, modules: frozenset) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and node.module in modules
    if isinstance(node, ast.Import):
        return any(alias.name in modules for alias in node.names)
    return False


def definitions(cells: list, own_modules: frozenset = frozenset(), keep: frozenset = frozenset(),
                notes: list | None = None) -> tuple[str, set[str], list[int]]:
    """(module source, names it defines, numbers of the cells that do not parse and were left out).

    Kept, in the notebook's order: imports (but of `own_modules`, the files being written: the names are
    in the code, and the grader's own), every `def` and `class`, assignments of literal constants, and
    every other top-level statement that binds or assigns into a name the kept code uses, transitively
    (`sigmoid = lambda x: ...`, `DTYPE = torch.float64`, `stoi = {...}`, `Value.__radd__ = ...`), or a
    name in `keep` (entry points). Left out: what the graded code cannot use (prints, plots, training
    runs, bare calls), named in a comment at the top of the module. `cells` holds sources or (source,
    execution count) pairs; `notes` (a list) receives what the student should know, as (names, text):
    statements left out that bind a name, a name defined before it is used at import, a definition the
    kernel ran out of the notebook's order."""
    parsed, broken = [], []
    for number, cell in enumerate(cells, 1):
        source, count = cell if isinstance(cell, tuple) else (cell, None)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            broken.append(number)
            continue
        lines = source.splitlines()
        for node in tree.body:
            parsed.append((number, count, node, lines))
    kept = [False] * len(parsed)
    needed = set(keep)
    for i, (_, _, node, _) in enumerate(parsed):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept[i] = _is_import(node) and not _imports_from(node, own_modules)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _is_literal_assignment(node):
            kept[i] = True
        if kept[i]:
            needed |= _uses(node) | _binds(node)[0]
    changed = True
    while changed:  # what the kept code uses, transitively
        changed = False
        for i, (_, _, node, _) in enumerate(parsed):
            if kept[i] or isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)) or _is_main_block(node):
                continue
            binds, into = _binds(node)
            if (binds | into) & needed:
                kept[i], changed = True, True
                needed |= _uses(node)
    out, names = [], set()
    for i, (number, _, node, lines) in enumerate(parsed):
        if kept[i]:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            out.append("\n".join(lines[start - 1: node.end_lineno]))
            names |= _binds(node)[0]
    if notes is not None:
        notes.extend(_conversion_notes(parsed, kept, needed))
    return "\n\n".join(out) + "\n", names, broken


def _conversion_notes(parsed, kept, needed) -> list[tuple[set, str]]:
    notes = []
    dropped = {}
    for i, (number, _, node, _) in enumerate(parsed):
        binds = _binds(node)[0] if not kept[i] else set()
        if binds and not isinstance(node, (ast.Import, ast.ImportFrom)):
            dropped.setdefault(number, set()).update(binds)
    for number, binds in sorted(dropped.items()):
        shown = ", ".join(sorted(binds)[:6]) + (", ..." if len(binds) > 6 else "")
        notes.append((binds, f"notebook cell {number}: left out (sets {shown}, which nothing graded uses)"))
    # Used at import before it is defined (top to bottom): a NameError when the module loads.
    bound: set = set()
    later = {}
    for i, (number, _, node, _) in enumerate(parsed):
        if kept[i]:
            for name in _binds(node)[0]:
                later.setdefault(name, number)
    for i, (number, _, node, _) in enumerate(parsed):
        if not kept[i]:
            continue
        early = {n for n in _eager_uses(node) - bound if later.get(n, 0) > number}
        for name in sorted(early):
            notes.append(({name}, f"notebook cell {number} uses `{name}` before cell {later[name]} defines it: "
                                  "the grader runs the cells top to bottom, as Restart & Run All does"))
        bound |= _binds(node)[0]
    # Several definitions of one name: the kernel holds the one run last, the grader the one written last.
    last_written, last_run = {}, {}
    for i, (number, count, node, _) in enumerate(parsed):
        if not kept[i]:
            continue
        for name in _binds(node)[0]:
            last_written[name] = (number, count)
            if count is not None and (name not in last_run or count >= last_run[name][1]):
                last_run[name] = (number, count)
    for name, (number, count) in sorted(last_written.items()):
        ran = last_run.get(name)
        if ran and ran[0] != number and name in needed | set(last_written):
            notes.append(({name}, f"`{name}` is defined in cells {ran[0]} and {number}; the kernel ran cell "
                                  f"{ran[0]} last (execution count {ran[1]}), but the grader uses cell {number}'s, "
                                  "the last in the notebook: run the cells in order (Restart & Run All) to see "
                                  "what is graded"))
    return notes


def entry_points() -> dict[str, dict[str, set[str]]]:
    """{assignment: {file: entry points of the exercises that need it}} from the registry (an exercise
    may need several files: `micrograd.nn` grades `MLP` and needs micrograd/engine.py and nn.py)."""
    from autograder.assignments import NAMES, exercises
    table: dict[str, dict[str, set[str]]] = {}
    for name in NAMES:
        for ex in exercises(name):
            for path in ex.required_files:
                table.setdefault(name, {}).setdefault(path, set()).add(ex.entry.split(".")[0])
    return table


def module_files_for(names: set[str], table: dict[str, dict[str, set[str]]]) -> list[str]:
    """The module files a notebook defining `names` stands for: those of the assignment whose
    entry points it defines most of, restricted to the files whose entries it defines."""
    best, best_count = None, 0
    for assignment, files in table.items():
        count = len(names & set().union(*files.values()))
        if count > best_count:
            best, best_count = assignment, count
    if best is None:
        return []
    return sorted(f for f, entries in table[best].items() if names & entries)


def notebook_to_modules(path: Path, target: Path, table: dict[str, dict[str, set[str]]] | None = None,
                        notes: list | None = None) -> Path:
    """Write the module files a notebook stands for. All its code goes to one file, the one most of the
    assignment's exercises need (micrograd/engine.py); the other files import everything from it, so
    that `engine.Value` and the `Value` that `nn.MLP` uses are one class, as in the files they stand for.
    `notes` (a list) receives (names, text) for what the student should know about the conversion."""
    cells = notebook_cells(path)
    table = entry_points() if table is None else table
    entries_all = frozenset(e for files_ in table.values() for es in files_.values() for e in es)
    _, names, broken = definitions(cells, keep=entries_all)
    files = module_files_for(names, table)
    if not files:
        known = sorted(entries_all)
        raise SubmissionError(f"{path.name} defines none of the graded entry points "
                              f"({', '.join(known) or 'no assignment is registered'})"
                              + (f"; code cells {broken} do not parse" if broken else ""))
    module_of = {f: f[:-3].replace("/", ".") for f in files}
    found: list = []
    source, _, _ = definitions(cells, frozenset(module_of.values()), keep=entries_all, notes=found)
    entries = {f: es for files_ in table.values() for f, es in files_.items()}
    home = min(files, key=lambda f: (-len(entries.get(f, ())), f))
    header = NOTEBOOK_MODULE_HEADER.format(name=path.name)
    if broken:
        header += f"# Left out: code cells {', '.join(map(str, broken))} (syntax errors).\n"
        found.append((set(), f"notebook code cells {', '.join(map(str, broken))}: left out (syntax errors)"))
    for _, text in found:
        header += "# " + text.replace("\n", " ") + "\n"
    if notes is not None:
        notes.extend(found)
    target.mkdir(parents=True, exist_ok=True)
    for rel in files:
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        body = source if rel == home else f"from {module_of[home]} import *  # noqa: the notebook's code is in {home}\n"
        out.write_text(header + body)
    return target


# -- any of them ------------------------------------------------------------------------------------------

def _is_notebook(path: Path) -> bool:
    return path.suffix == ".ipynb"


def _unwrap(directory: Path, workdir: Path, depth: int = 0, notes: list | None = None) -> Path:
    """A folder that holds only one folder, one notebook or one zip stands for what it holds."""
    from autograder.assignments import detect
    if depth > 3 or detect(directory):
        return directory
    entries = [p for p in directory.iterdir() if p.name not in SKIP_DIRS | SKIP_FILES and not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    notebooks = [p for p in entries if p.is_file() and _is_notebook(p)]
    zips = [p for p in entries if p.is_file() and p.suffix == ".zip"]
    inner = workdir / f"inner-{depth}"
    if len(notebooks) == 1:
        return notebook_to_modules(notebooks[0], inner, notes=notes)
    if len(notebooks) > 1:
        raise SubmissionError(f"several notebooks ({', '.join(sorted(p.name for p in notebooks))}): submit one")
    candidate = None
    if len(zips) == 1 and not dirs:
        candidate = _unwrap(extract_zip(zips[0], inner), workdir, depth + 1, notes)
    elif len(dirs) == 1 and len(entries) == 1:
        candidate = _unwrap(dirs[0], workdir, depth + 1, notes)
    # Unwrapped only where that finds an assignment: else the errors name the files as submitted.
    return candidate if candidate is not None and detect(candidate) else directory


def open_submission(path: Path, workdir: Path, notes: list | None = None) -> Path:
    """The directory to grade for `path`: a private copy of it, unpacked into `workdir`. `notes` receives
    what a notebook's conversion left out or found out of order, as (names, text)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise SubmissionError(f"{path.name} is a broken link")
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    copy = workdir / "submission"
    if path.is_dir():
        return _unwrap(copy_tree(path, copy), workdir, notes=notes)
    if _is_notebook(path):
        return notebook_to_modules(path, copy, notes=notes)
    if path.suffix == ".zip" or zipfile.is_zipfile(path):
        return _unwrap(extract_zip(path, copy), workdir, notes=notes)
    raise SubmissionError(f"{path.name} is not a directory, a .zip or a notebook (.ipynb)")


def grade_cell_notes(nb, assignments: list[str]) -> dict[str, str]:
    """exercise id -> a note, for a course notebook (one with nbgrader grade cells) from which that
    exercise's grade cell was deleted, or in which it was edited (its source no longer matches the
    checksum nbgrader recorded at release). The same notes go to the gradebook (the course's
    preprocessor reads the submitted file) and to `autograder grade`: either way the exercise is graded
    from the notebook's code, and the note says what happened to the cell."""
    from autograder.assignments import NAMES, exercises
    cells = [c for c in nb.get("cells", []) if (c.get("metadata") or {}).get("nbgrader", {}).get("grade")]
    if not cells:
        return {}
    by_id = {c["metadata"]["nbgrader"].get("grade_id"): c for c in cells}
    notes = {}
    for name in assignments:
        if name not in NAMES:
            continue
        for ex in exercises(name):
            gid = ex.id.replace(".", "-")
            cell = by_id.get(gid)
            if cell is None:
                notes[ex.id] = (f"its grade cell ({gid}) is missing from the submitted notebook (deleted?); "
                                "graded from the notebook's code all the same")
                continue
            recorded = cell["metadata"]["nbgrader"].get("checksum")
            try:
                edited = bool(recorded) and nbgrader_checksum(cell) != recorded
            except Exception:  # noqa: a malformed cell is for nbgrader to refuse, not for us to crash on
                edited = False
            if edited:
                notes[ex.id] = (f"its grade cell ({gid}) was edited; the grade comes from the notebook's code "
                                "(a grade cell's own code never counts)")
    return notes


def nbgrader_checksum(cell) -> str:
    """The checksum nbgrader records in a cell's metadata at release (`nbgrader.utils.compute_checksum`: the
    same bytes, md5), computed here without importing nbgrader, whose package loads its server extensions
    first (about 2 s in every grading process). tests/test_submission.py checks it against nbgrader's own."""
    import hashlib
    meta = cell["metadata"]["nbgrader"]
    grade, solution = meta.get("grade", False), meta.get("solution", False)
    locked = False if solution else True if grade else meta.get("locked", False)
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    digest = hashlib.md5()
    for part in (source, cell["cell_type"], str(grade), str(solution), str(locked), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if grade:
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def add_notes(result: GradeResult, notes: dict[str, str]) -> None:
    for exercise in result.exercises:
        if exercise.id in notes:
            exercise.message = ((exercise.message + "\n") if exercise.message else "") + "note: " + notes[exercise.id]


def grade_path(path: Path, assignments: list[str] | None, *, hidden: bool, runner=None,
               exercise_filter=None, seeds=None, cell_notes: bool = True) -> GradeResult:
    """Grade a submission as it arrived. `exercise_filter(exercises) -> exercises` may adjust what is
    graded (batch grading caps time limits with it). `cell_notes`: a course notebook's deleted or edited
    grade cells are named (the nbgrader preprocessor, which sees a notebook nbgrader has already
    repaired, says so from the submitted file instead)."""
    from autograder.assignments import detect, exercises
    notes: list = []
    with tempfile.TemporaryDirectory(prefix="submission-") as tmp:
        try:
            directory = open_submission(Path(path), Path(tmp), notes)
            names = assignments or detect(directory)
            exs = [ex for name in names for ex in exercises(name)]
            expected = sorted({f for ex in exs for f in ex.required_files})
            if not names or not any((directory / f).is_file() for f in expected):
                found = sorted(str(p.relative_to(directory)) for p in directory.rglob("*.py"))[:5]
                raise SubmissionError("no assignment files found (expected "
                                      + (", ".join(expected) if names else "e.g. micrograd/engine.py, "
                                         "backprop_ninja.py or graphs.py") + ")"
                                      + (f"; found {', '.join(found)}" if found else "; it has no Python files"))
            if exercise_filter is not None:
                exs = exercise_filter(exs)
        except (SubmissionError, KeyError, OSError, UnicodeError) as exc:
            message = str(exc).strip("'\"") if isinstance(exc, (SubmissionError, KeyError)) else \
                f"cannot read the submission ({type(exc).__name__}: {exc})"
            return GradeResult(submission=str(path), score=0.0, max_score=_max_score(assignments),
                               exercises=[], hidden=hidden, sandbox="-", error=message)
        from autograder.core.pipeline import grade
        result = grade(directory, exs, hidden=hidden, runner=runner, seeds=seeds)
        result.submission = str(path)
        _attach_notes(result, notes)
        if cell_notes and _is_notebook(Path(path)):
            try:
                import nbformat
                add_notes(result, grade_cell_notes(nbformat.read(str(path), as_version=4), names))
            except Exception:  # noqa: the notebook was read once already; a note is not worth a crash
                pass
        return result


def _attach_notes(result: GradeResult, notes: list) -> None:
    """A notebook conversion's notes, where they explain a loss: added to the message of each exercise
    that lost points and whose message names one of the note's names (a NameError), or, for a note about
    order, whose entry point it is."""
    for exercise in result.exercises:
        if exercise.score >= exercise.max_score:
            continue
        entry = exercise.id.split(".", 1)[-1]
        said = [text for names, text in notes
                if any(f"'{n}'" in (exercise.message or "") or n == entry for n in names)]
        if said:
            exercise.message = ((exercise.message + "\n") if exercise.message else "") + "\n".join(
                "note: " + text for text in dict.fromkeys(said))


def _max_score(assignments: list[str] | None) -> float:
    from autograder.assignments import NAMES, exercises
    try:
        return float(sum(ex.points for name in (assignments or []) if name in NAMES for ex in exercises(name)))
    except Exception:
        return 0.0


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so a reader (or a restarted run) sees the whole file or none of it."""
    path = Path(path)
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"  # fails before any file is touched
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
