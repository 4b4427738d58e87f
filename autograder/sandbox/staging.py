"""The private directory the sandbox sees (its "home"): a copy of the student's-process runtime
(autograder/runtime/, under the same import path) and the drivers, and a read-only copy of the submission
(size-limited, links and caches skipped), re-staged only when the submission's fingerprint changes."""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from autograder.sandbox.mechanisms import INSIDE, PACKAGE_DIR, PACKAGE_ROOT

RUNTIME_DIR = PACKAGE_DIR / "runtime"
# The student's process runtime: every module of autograder/runtime/, copied as autograder/runtime/ (the same
# import path inside the sandbox as in the grader), and nothing else of the grader.
RUNTIME_FILES = tuple(sorted(p.name for p in RUNTIME_DIR.glob("*.py")))
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024
MAX_SUBMISSION_FILES = 2000
SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".venv", "venv", "env", "__MACOSX",
             "node_modules", "site-packages", ".mypy_cache", ".tox",
             ".backprop-lab"}  # the student's own last result (history.py): not graded code


def _driver_file(module_name: str) -> Path:
    """The file of a driver module, found without importing it (nor, where avoidable, its package)."""
    try:
        spec = importlib.util.find_spec(module_name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin)
    except (ImportError, ValueError):
        pass
    path = PACKAGE_ROOT.joinpath(*module_name.split(".")).with_suffix(".py")
    if path.is_file():
        return path
    raise ValueError(f"driver module {module_name} not found")


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256(str(root).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.exists(
            os.path.join(dirpath, d, "pyvenv.cfg")))
        for name in sorted(filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _copy_submission(source: Path, target: Path) -> None:
    """A read-only copy of the submission's regular files (links and caches skipped, size limited)."""
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not (here / d).is_symlink()
                             and not (here / d / "pyvenv.cfg").exists())  # a virtualenv, whatever its name
        dest = target / here.relative_to(source)
        dest.mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            st = os.lstat(here / name)
            if not stat.S_ISREG(st.st_mode):
                continue
            files, total = files + 1, total + st.st_size
            if files > MAX_SUBMISSION_FILES or total > MAX_SUBMISSION_BYTES:
                raise ValueError(f"the submission is larger than {MAX_SUBMISSION_FILES} files or "
                                 f"{MAX_SUBMISSION_BYTES // 2**20} MB")
            shutil.copyfile(here / name, dest / name, follow_symlinks=False)
            os.chmod(dest / name, 0o444)
    _compile_bytecode(target)
    for dirpath, _, _ in os.walk(target):
        os.chmod(dirpath, 0o555)


def _compile_bytecode(root: Path) -> None:
    """Each .py of the staged copy compiled once, here, into its `__pycache__`: every student process of the
    submission (12-14) then loads the bytecode instead of compiling the source again (5-10 ms per file and
    per process). Compiling runs none of the student's code (the pipeline compiles the same file to report
    a syntax error); a file that does not compile is left to the student's process, which reports it."""
    import py_compile
    for path in root.rglob("*.py"):
        cfile = path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.pyc"
        try:
            py_compile.compile(str(path), cfile=str(cfile), doraise=True, optimize=0,
                               invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
            os.chmod(cfile, 0o444)
        except Exception:  # noqa: a syntax error, a file too deep to compile here: the student's process says
            pass


def _make_writable(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        try:
            os.chmod(dirpath, 0o755)
        except OSError:
            pass



class Staging:
    """One runner's home: created on first use, removed at close (or at exit). `mechanism` (its name) says
    how the server sees the paths (under /sandbox in bubblewrap) and who must be able to enter them."""

    def __init__(self, mechanism: str):
        self.mechanism = mechanism
        self.home: Path | None = None
        self.staged: tuple[str, str] | None = None   # (fingerprint, inside path) of the staged submission
        self._drivers: dict[str, str] = {}

    def prepare(self) -> Path:
        if self.home is not None:
            return self.home
        home = Path(tempfile.mkdtemp(prefix="autograder-sandbox-"))
        os.chmod(home, 0o711)
        runtime = home / "runtime" / "autograder" / "runtime"
        runtime.mkdir(parents=True)
        (runtime.parent / "__init__.py").write_text('"""The student\'s-process runtime: nothing of the grader."""\n')
        for name in RUNTIME_FILES:
            shutil.copyfile(RUNTIME_DIR / name, runtime / name)
        (home / "runtime" / "drivers").mkdir()
        (home / "submission").mkdir()
        for dirpath, _, filenames in os.walk(home / "runtime"):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(home / "submission", 0o755)
        self.home = home
        atexit.register(self.remove)
        return home

    def inside(self, path: Path) -> str:
        """`path` (under the home) as the server sees it."""
        if self.mechanism == "bwrap":
            return f"{INSIDE}/" + str(path.relative_to(self.home))
        return str(path)

    def driver(self, driver: str) -> tuple[str, str]:
        """The staged copy of `driver`'s ("module:function") file as the server sees it, and the function."""
        module_name, function = driver.split(":")
        if module_name not in self._drivers:
            source = _driver_file(module_name)
            name = re.sub(r"\W", "_", module_name)
            target = self.home / "runtime" / "drivers" / f"{name}.py"
            os.chmod(target.parent, 0o755)
            shutil.copyfile(source, target)
            os.chmod(target, 0o444)
            os.chmod(target.parent, 0o555)
            self._drivers[module_name] = self.inside(target)
        return self._drivers[module_name], function

    def submission(self, submission: Path) -> tuple[str, str, bool]:
        """(fingerprint, path as the server sees it, whether it was staged just now): the submission's private
        copy, the only one staged (the previous one is removed)."""
        submission = Path(submission).resolve()
        key = _fingerprint(submission)
        if self.staged and self.staged[0] == key:
            return *self.staged, False
        area = self.home / "submission"
        _make_writable(area)
        for old in area.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        self.staged = None
        target = area / os.urandom(8).hex()
        _copy_submission(submission, target)
        os.chmod(area, 0o555 if self.mechanism != "user" else 0o711)
        self.staged = (key, self.inside(target))
        return *self.staged, True

    def remove(self) -> None:
        if self.home is not None:
            _make_writable(self.home)
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None
            self.staged = None
            self._drivers = {}
