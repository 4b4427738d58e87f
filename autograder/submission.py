"""Submissions as they arrive: a directory, a `.zip`, or a Jupyter notebook, always graded from a
private copy in a work directory.

- A directory is copied (links refused, size and file count limited), so what is graded cannot
  change under the grader nor point at files outside the submission (e.g. the reference solutions).
- A zip is extracted member by member: absolute paths, `..`, links, too many files, too many bytes
  (counted while decompressing, not trusted from the header) and zip bombs are refused.
- A notebook's code cells become the assignment's module file(s). Which assignment, and which file,
  is decided by the entry points the code defines (`class Value`, `def manual_backward`...). Only
  definitions are kept (imports, functions, classes, constant assignments): a notebook's top-level
  demo code (training loops, prints, `cmp` calls) would otherwise run at every import.
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

from .pipeline import GradeResult, grade

MAX_FILES = 2000                 # files in one submission
MAX_BYTES = 64 * 1024 * 1024     # bytes of one submission, uncompressed
MAX_RATIO = 100                  # compression ratio of one zip member above which it is a bomb
RATIO_FLOOR = 1024 * 1024        # ... when it is larger than this (text compresses ~5-10x)
SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".venv", "__MACOSX",
             ".backprop-lab"}  # the student's own record of their last check (history.py): never graded
SKIP_FILES = {".DS_Store"}
NOTEBOOK_MODULE_HEADER = "# Generated from the code cells of {name} by the autograder (definitions only).\n"


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

def notebook_code(path: Path) -> list[str]:
    """The source of every code cell of a notebook, IPython magics and shell lines commented out."""
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
        cells.append("\n".join(lines))
    return cells


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _is_definition(node: ast.stmt) -> bool:
    """Kept in the module: imports (but the grader's own: a course notebook's grade cells import
    `autograder`, which the student's process must not need), functions, classes, and assignments
    of constants."""
    if isinstance(node, ast.Import):
        return not any(alias.name.split(".")[0] == "autograder" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] != "autograder" or node.level > 0
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
            return True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    return False


def _imports_from(node: ast.stmt, modules: frozenset) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and node.module in modules
    if isinstance(node, ast.Import):
        return any(alias.name in modules for alias in node.names)
    return False


def definitions(cells: list[str], own_modules: frozenset = frozenset()) -> tuple[str, set[str], list[int]]:
    """(module source, names it defines, numbers of the cells that do not parse and were left out).
    Imports from `own_modules` (the files being written) are left out: the names are in the code."""
    kept, names, broken = [], set(), []
    for number, source in enumerate(cells, 1):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            broken.append(number)
            continue
        lines = source.splitlines()
        for node in tree.body:
            if _is_definition(node) and not _imports_from(node, own_modules):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                kept.append("\n".join(lines[start - 1: node.end_lineno]))
                names |= _defined_names(node)
    return "\n\n".join(kept) + "\n", names, broken


def entry_points() -> dict[str, dict[str, set[str]]]:
    """{assignment: {file: entry points of the exercises that need it}} from the registry (an exercise
    may need several files: `micrograd.nn` grades `MLP` and needs micrograd/engine.py and nn.py)."""
    from .assignments import NAMES, exercises
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


def notebook_to_modules(path: Path, target: Path, table: dict[str, dict[str, set[str]]] | None = None) -> Path:
    """Write the module files a notebook stands for. All its code goes to one file, the one most of the
    assignment's exercises need (micrograd/engine.py); the other files import everything from it, so
    that `engine.Value` and the `Value` that `nn.MLP` uses are one class, as in the files they stand for."""
    cells = notebook_code(path)
    table = entry_points() if table is None else table
    _, names, broken = definitions(cells)
    files = module_files_for(names, table)
    if not files:
        known = sorted({e for files in table.values() for es in files.values() for e in es})
        raise SubmissionError(f"{path.name} defines none of the graded entry points "
                              f"({', '.join(known) or 'no assignment is registered'})"
                              + (f"; code cells {broken} do not parse" if broken else ""))
    module_of = {f: f[:-3].replace("/", ".") for f in files}
    source, _, _ = definitions(cells, frozenset(module_of.values()))
    entries = {f: es for files_ in table.values() for f, es in files_.items()}
    home = min(files, key=lambda f: (-len(entries.get(f, ())), f))
    header = NOTEBOOK_MODULE_HEADER.format(name=path.name)
    if broken:
        header += f"# Left out: code cells {', '.join(map(str, broken))} (syntax errors).\n"
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


def _unwrap(directory: Path, workdir: Path, depth: int = 0) -> Path:
    """A folder that holds only one folder, one notebook or one zip stands for what it holds."""
    from .assignments import detect
    if depth > 3 or detect(directory):
        return directory
    entries = [p for p in directory.iterdir() if p.name not in SKIP_DIRS | SKIP_FILES and not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    notebooks = [p for p in entries if p.is_file() and _is_notebook(p)]
    zips = [p for p in entries if p.is_file() and p.suffix == ".zip"]
    inner = workdir / f"inner-{depth}"
    if len(notebooks) == 1:
        return notebook_to_modules(notebooks[0], inner)
    if len(notebooks) > 1:
        raise SubmissionError(f"several notebooks ({', '.join(sorted(p.name for p in notebooks))}): submit one")
    candidate = None
    if len(zips) == 1 and not dirs:
        candidate = _unwrap(extract_zip(zips[0], inner), workdir, depth + 1)
    elif len(dirs) == 1 and len(entries) == 1:
        candidate = _unwrap(dirs[0], workdir, depth + 1)
    # Unwrapped only where that finds an assignment: else the errors name the files as submitted.
    return candidate if candidate is not None and detect(candidate) else directory


def open_submission(path: Path, workdir: Path) -> Path:
    """The directory to grade for `path`: a private copy of it, unpacked into `workdir`."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise SubmissionError(f"{path.name} is a broken link")
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    copy = workdir / "submission"
    if path.is_dir():
        return _unwrap(copy_tree(path, copy), workdir)
    if _is_notebook(path):
        return notebook_to_modules(path, copy)
    if path.suffix == ".zip" or zipfile.is_zipfile(path):
        return _unwrap(extract_zip(path, copy), workdir)
    raise SubmissionError(f"{path.name} is not a directory, a .zip or a notebook (.ipynb)")


def grade_path(path: Path, assignments: list[str] | None, *, hidden: bool, runner=None,
               exercise_filter=None, seeds=None) -> GradeResult:
    """Grade a submission as it arrived. `exercise_filter(exercises) -> exercises` may adjust what is
    graded (batch grading caps time limits with it)."""
    from .assignments import detect, exercises
    with tempfile.TemporaryDirectory(prefix="submission-") as tmp:
        try:
            directory = open_submission(Path(path), Path(tmp))
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
        result = grade(directory, exs, hidden=hidden, runner=runner, seeds=seeds)
        result.submission = str(path)
        return result


def _max_score(assignments: list[str] | None) -> float:
    from .assignments import NAMES, exercises
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
