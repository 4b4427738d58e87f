"""Generate what students get from the one source, `reference/` (DESIGN.md, decision 2).

A solution region is nbgrader's: the lines from one containing `### BEGIN SOLUTION` to one containing
`### END SOLUTION`. In the student template it becomes, at the marker's indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

or, where the marker says `### BEGIN SOLUTION stub: <code>`, that code: `dlogprobs = None  # TODO`
lets a student fill a long function one step at a time and be graded on each step as it is done.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_RE = re.compile(r"###\s*BEGIN SOLUTION\s+stub:\s?(?P<stub>.*)$", re.MULTILINE)
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".backprop-lab"}  # .backprop-lab: a check's history


# student_template/.generated.json: the hash of every file `make templates` last wrote there. A file whose
# content is neither that nor the new version was edited by someone (a student filling the template):
# it is kept, and `generate` says so instead of overwriting it (`--force` overwrites).
MANIFEST = ".generated.json"
STUDENT_README = Path(__file__).parent / "templates" / "student_README.md"


class TemplateError(ValueError):
    pass


class EditedFiles(RuntimeError):
    """Generated files that were edited since they were generated: left as they are."""

    def __init__(self, paths: list[Path], changed: list[Path]):
        self.paths, self.changed = paths, changed
        super().__init__("not overwritten, edited since `make templates` wrote them: "
                         + ", ".join(str(p) for p in paths)
                         + " (move your work elsewhere, or run `autograder templates --force` to overwrite it)")


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


def student_files(root: Path) -> dict[Path, str | bytes]:
    """Everything generated into student_template/: the stubbed modules, its README, the notebooks."""
    files = template_files(root / "reference")
    if STUDENT_README.is_file():
        files[Path("README.md")] = STUDENT_README.read_text()
    try:
        student_notebooks = importlib.import_module(f"{__package__}.student_notebooks")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.student_notebooks":
            raise
    else:
        files.update({Path("notebooks") / rel: content for rel, content in student_notebooks.notebook_files(root).items()})
    return files


def generate(root: Path, check: bool = False, force: bool = False) -> list[Path]:
    """Write (or, with `check`, only list) the generated files that differ from what is on disk. A file of
    student_template/ edited since it was generated is kept (`EditedFiles` lists them) unless `force`."""
    root = Path(root)
    edited: list[Path] = []
    changed = sync_tree(root / "student_template", student_files(root), check,
                        manifest=True, force=force, edited=edited)
    try:  # `from . import notebooks` would raise a plain ImportError when the module is absent
        notebooks = importlib.import_module(f"{__package__}.notebooks")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.notebooks":
            raise
    else:
        changed += notebooks.generate(root, check)
    if edited and not check:
        raise EditedFiles(edited, changed)
    return changed


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(target: Path) -> dict[str, str]:
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def sync_tree(target: Path, files: dict[Path, str | bytes], check: bool, *, manifest: bool = False,
              force: bool = False, edited: list | None = None) -> list[Path]:
    """Make `target` hold `files`; return the paths that differed. With `manifest`, a file whose content
    is not what was last generated there (per target/.generated.json) was edited: it is kept and added
    to `edited` instead, unless `force`; a file never generated there is left alone."""
    changed = []
    known = read_manifest(target) if manifest else {}
    written = dict(known)

    def edited_since_generated(path: Path, current: bytes) -> bool:
        if manifest and not force and known.get(path.relative_to(target).as_posix()) != _digest(current):
            if edited is not None:
                edited.append(path)
            return True
        return False

    for rel, content in files.items():
        path = target / rel
        current = path.read_bytes() if path.is_file() else None
        data = content.encode() if isinstance(content, str) else content
        if current != data:
            changed.append(path)
            if check or (current is not None and edited_since_generated(path, current)):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        written[Path(rel).as_posix()] = _digest(data)
    # A generated .py whose reference is gone is stale too.
    for path in sorted(target.rglob("*.py")) if target.is_dir() else []:
        rel = path.relative_to(target)
        if rel in files or SKIP_DIRS & set(path.parts):
            continue
        if manifest and rel.as_posix() not in known:
            continue  # never generated here: someone's own file, not ours to remove
        changed.append(path)
        if not check and not edited_since_generated(path, path.read_bytes()):
            path.unlink()
            written.pop(rel.as_posix(), None)
    if manifest:
        text = json.dumps(dict(sorted(written.items())), indent=1) + "\n"
        path = target / MANIFEST
        if (path.read_text() if path.is_file() else None) != text:
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return changed
