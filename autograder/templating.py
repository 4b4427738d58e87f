"""Generate what students get from the one source, `reference/` (DESIGN.md, decision 2).

A solution region is nbgrader's: the lines from one containing `### BEGIN SOLUTION` to one containing
`### END SOLUTION`. In the student template it becomes, at the marker's indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

or, where the marker says `### BEGIN SOLUTION stub: <code>`, that code: `dlogprobs = None  # TODO`
lets a student fill a long function one step at a time and be graded on each step as it is done.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_RE = re.compile(r"###\s*BEGIN SOLUTION\s+stub:\s?(?P<stub>.*)$", re.MULTILINE)
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


class TemplateError(ValueError):
    pass


def strip_solutions(source: str, filename: str = "<source>") -> str:
    """The student version of a reference source."""
    out: list[str] = []
    inside = False
    begin_line = 0
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if BEGIN in line:
            if inside:
                raise TemplateError(f"{filename}:{number}: nested {BEGIN} (the one at line {begin_line} is open)")
            inside, begin_line = True, number
            indent = line[: len(line) - len(line.lstrip())]
            match = STUB_RE.search(line.rstrip("\n"))
            stub = [match.group("stub")] if match else ["# YOUR CODE HERE", "raise NotImplementedError()"]
            out.extend(f"{indent}{s}\n" for s in stub)
        elif END in line:
            if not inside:
                raise TemplateError(f"{filename}:{number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise TemplateError(f"{filename}:{begin_line}: {BEGIN} is never closed")
    return "".join(out)


def strip_markers(source: str) -> str:
    """The reference source without the stub annotations (nbgrader's own markers stay)."""
    return STUB_RE.sub(BEGIN, source)


def template_files(reference: Path) -> dict[Path, str | bytes]:
    """Relative path -> content of every student-template file derived from `reference`."""
    files: dict[Path, str | bytes] = {}
    for path in sorted(reference.rglob("*")):
        rel = path.relative_to(reference)
        if not path.is_file() or SKIP_DIRS & set(rel.parts) or path.suffix == ".pyc":
            continue
        if path.suffix == ".py":
            files[rel] = strip_solutions(path.read_text(), str(path))
        else:
            files[rel] = path.read_bytes()
    return files


def generate(root: Path, check: bool = False) -> list[Path]:
    """Write (or, with `check`, only list) the generated files that differ from what is on disk."""
    root = Path(root)
    changed = sync_tree(root / "student_template", template_files(root / "reference"), check)
    try:  # `from . import notebooks` would raise a plain ImportError when the module is absent
        notebooks = importlib.import_module(f"{__package__}.notebooks")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.notebooks":
            raise
    else:
        changed += notebooks.generate(root, check)
    return changed


def sync_tree(target: Path, files: dict[Path, str | bytes], check: bool) -> list[Path]:
    changed = []
    for rel, content in files.items():
        path = target / rel
        current = path.read_bytes() if path.is_file() else None
        data = content.encode() if isinstance(content, str) else content
        if current != data:
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    # A generated .py whose reference is gone is stale too.
    for path in sorted(target.rglob("*.py")) if target.is_dir() else []:
        if path.relative_to(target) not in files and not SKIP_DIRS & set(path.parts):
            changed.append(path)
            if not check:
                path.unlink()
    return changed
