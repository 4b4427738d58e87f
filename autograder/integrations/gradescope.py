"""`autograder gradescope-package -o autograder.zip`: the zip Gradescope's "Configure Autograder" takes.

Gradescope's specification: the zip's root holds `setup.sh` (run once while the image is built; it
installs the dependencies) and `run_autograder` (run per submission, in /autograder, with the
student's files in /autograder/submission; it must write /autograder/results/results.json). Both are
written here; the zip also carries a wheel of this package built from the checkout, the pinned
constraints (torch included), and, when AUTOGRADER_SECRET is set while packaging, the secret the
hidden cases derive from (the zip is only ever seen by instructors and Gradescope).

Both scripts take Gradescope's /autograder from AUTOGRADER_ROOT when it is set (and run_autograder each of its
paths from AUTOGRADER_SOURCE, AUTOGRADER_SUBMISSION, AUTOGRADER_RESULTS and AUTOGRADER_BIN), so the whole
package can be run here, as root, in a temporary folder standing in for /autograder.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE")
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once while building the autograder image (Ubuntu 22.04, Python 3.10 by default):
# a virtual environment with this package and its pinned dependencies (torch CPU wheels from PyTorch's
# index), the unprivileged user the student's code runs as, and the grader's files made unreachable to it.
# AUTOGRADER_ROOT (default /autograder) stands for Gradescope's /autograder (a test runs the package in a
# temporary folder); a venv already at $AUTOGRADER_ROOT/venv is reused.
set -euxo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$ROOT/source"
if ! python3 -m venv --help >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1; then
  apt-get update -qq
  # python3-venv for the environment; bubblewrap sandboxes the student's code where namespaces work
  apt-get install -y -qq python3 python3-venv python3-pip bubblewrap libseccomp2 || apt-get install -y -qq python3 python3-venv python3-pip libseccomp2
fi
# Inside Docker user namespaces are usually unavailable: the student's code then runs as this user (or, when
# several run at once, users numbered from it), none of whom can read the grader's files or the secret.
SANDBOX_USER="${{AUTOGRADER_SANDBOX_USER:-{sandbox_user}}}"
id -u "$SANDBOX_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SANDBOX_USER"
[ -x "$ROOT/venv/bin/python" ] || python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --quiet --upgrade pip || echo "(pip not upgraded: no index reachable?)"
"$ROOT/venv/bin/python" -m pip install --quiet -c constraints.txt --extra-index-url {torch_index} {wheel}
# The installed package, the source (and secret) and the results become root's alone (o-rwx works for any
# uid that is not root's), then are checked as the sandbox user: the image fails to build rather than
# give every student 0 at grading time.
"$ROOT/venv/bin/python" -I -m autograder.integrations.gradescope protect --root "$ROOT" --check
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in a fresh container. The student's code runs in
# the grader's sandbox (bubblewrap, or the unprivileged AUTOGRADER_SANDBOX_USER); before it runs, the
# grader's files, the secret and the results folder are made the grader's alone. results.json is written
# last, by a move from a private folder, once no process of the student's can run: a results.json the
# student's code managed to write is replaced. Whatever happens, a results.json is written; what went
# wrong goes to this script's output (instructors only), never to the student.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="${{AUTOGRADER_SOURCE:-$ROOT/source}}"
SUBMISSION="${{AUTOGRADER_SUBMISSION:-$ROOT/submission}}"
RESULTS="${{AUTOGRADER_RESULTS:-$ROOT/results}}"
BIN="${{AUTOGRADER_BIN:-$ROOT/venv/bin}}"
export AUTOGRADER_SANDBOX_USER="${{AUTOGRADER_SANDBOX_USER:-{sandbox_user}}}"
mkdir -p "$RESULTS"
PRIVATE="$(mktemp -d)"   # mode 700: the grader's
if [ "$(id -u)" = 0 ]; then
  # Again at every run (setup.sh did it once): the package, the source, the secret and the results.
  "$BIN/python" -I -m autograder.integrations.gradescope protect --root "$ROOT" --source "$SOURCE" --results "$RESULTS" \\
    >>"$PRIVATE/stderr.txt" 2>&1
fi
if [ -f "$SOURCE/secret" ]; then
  export AUTOGRADER_SECRET="$(cat "$SOURCE/secret")"
  rm -f "$SOURCE/secret"  # held by the grader's process only from now on (a fresh container per run)
fi
"$BIN/python" -I -m autograder.integrations.gradescope arrange "$SUBMISSION" "$PRIVATE/upload" {arrange_args} 2>>"$PRIVATE/stderr.txt"
(cd "$PRIVATE" && "$BIN/python" -I -m autograder grade "$PRIVATE/upload" --format gradescope -o "$PRIVATE/results.json" {grade_args}) 2>>"$PRIVATE/stderr.txt"
status=$?
unset AUTOGRADER_SECRET
# No code of the student's may run past this point (every sandbox uid's processes: the base user's and
# those numbered from it).
if [ "$(id -u)" = 0 ] && id -u "$AUTOGRADER_SANDBOX_USER" >/dev/null 2>&1; then
  "$BIN/python" -I -m autograder.integrations.gradescope kill-sandbox 2>>"$PRIVATE/stderr.txt" \\
    || pkill -KILL -u "$AUTOGRADER_SANDBOX_USER" 2>/dev/null
fi
cat "$PRIVATE/stderr.txt"
"$BIN/python" -I -m autograder.integrations.gradescope finalize "$PRIVATE" "$status" \\
  || printf '{{"score": 0, "output": "{failed}", "tests": []}}\\n' > "$PRIVATE/final.json"
mv -f "$PRIVATE/final.json" "$RESULTS/results.json"
chmod 644 "$RESULTS/results.json"
rm -rf "$PRIVATE"
exit 0
"""

FAILED = ("The autograder could not grade this submission (a problem on the course side, not a verdict on "
          "your code). Please contact the course staff.")


class PackageError(Exception):
    pass


def build_wheel(outdir: Path, repo: Path = REPO_ROOT) -> Path:
    """A wheel of this package, built from a copy of the sources (the checkout stays clean)."""
    with tempfile.TemporaryDirectory(prefix="autograder-build-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in BUILD_FILES:
            if (repo / name).is_file():
                shutil.copy2(repo / name, src / name)
        if not (src / "README.md").exists():
            (src / "README.md").write_text("backprop-lab autograder\n")
        shutil.copytree(repo / "autograder", src / "autograder",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # No build isolation: the build backend (setuptools) is already installed, and the network may not be.
        run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                              "--wheel-dir", str(outdir), str(src)], capture_output=True, text=True)
        if run.returncode != 0:
            raise PackageError(f"building the wheel failed:\n{run.stderr[-2000:]}")
    wheels = sorted(Path(outdir).glob("*.whl"))
    if not wheels:
        raise PackageError("building the wheel produced no .whl file")
    return wheels[-1]


def _add(zf: zipfile.ZipFile, name: str, data: bytes | str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = ((0o100755 if executable else 0o100644) << 16)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def check_assignments(assignments: list[str] | None) -> list[str]:
    """The assignments a package grades: one or more that exist, named (a typo would give everyone 0,
    and grading whatever an upload holds would grade a whole-repository upload on every assignment)."""
    from autograder.assignments import NAMES
    if not assignments:
        raise PackageError(f"name the assignment this Gradescope autograder grades: -a NAME (one of {', '.join(NAMES)})")
    unknown = [a for a in assignments if a not in NAMES]
    if unknown:
        raise PackageError(f"unknown assignment {', '.join(map(repr, unknown))}: the assignments are {', '.join(NAMES)}")
    return list(dict.fromkeys(assignments))


def build_package(output: Path, *, assignments: list[str] | None = None, public_only: bool = False,
                  secret: str | None = None, repo: Path = REPO_ROOT) -> Path:
    from autograder.core.config import DEFAULT_SANDBOX_USER as sandbox_user  # AUTOGRADER_SANDBOX_USER's default
    output = Path(output)
    assignments = check_assignments(assignments)
    grade_args = " ".join(f"-a {shlex.quote(a)}" for a in assignments)
    arrange_args = grade_args
    if public_only:
        grade_args += " --public-only"
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        wheel = build_wheel(Path(tmp), repo)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        with zipfile.ZipFile(partial, "w") as zf:
            _add(zf, "setup.sh", SETUP_SH.format(torch_index=TORCH_INDEX, wheel=f"dist/{wheel.name}",
                                                 sandbox_user=sandbox_user), executable=True)
            _add(zf, "run_autograder", RUN_AUTOGRADER.format(grade_args=grade_args.strip(), arrange_args=arrange_args,
                                                             sandbox_user=sandbox_user, failed=FAILED),
                 executable=True)
            _add(zf, f"dist/{wheel.name}", wheel.read_bytes())
            constraints = repo / "constraints.txt"
            pins = constraints.read_text() if constraints.is_file() else ""
            if "torch==" not in pins:
                pins += "torch==2.13.0\n"
            _add(zf, "constraints.txt", pins)
            if secret:
                _add(zf, "secret", secret)
        os.replace(partial, output)
    return output


# -- in run_autograder ------------------------------------------------------------------------------------

def arrange_upload(upload: Path, target: Path, assignments: list[str]) -> list[str]:
    """Copy the upload to `target` with each file the assignments need where the grader looks for it: a
    file uploaded elsewhere (micrograd's engine.py and nn.py at the upload's root, or in a folder of
    their own) is placed at its path (micrograd/engine.py) when exactly one file has its name. Returns
    notes for the student; the upload itself is never changed."""
    from autograder.assignments import exercises
    from autograder.core.submission import SKIP_DIRS, copy_tree, open_submission
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        try:  # an upload of one zip or notebook is unpacked as `grade` would
            opened = open_submission(upload, Path(tmp))
        except Exception:
            opened = upload
        copy_tree(opened, target)
    needed = sorted({f for name in assignments for ex in exercises(name) for f in ex.required_files})
    for rel in needed:
        if (target / rel).is_file():
            continue
        name = Path(rel).name
        found = [p for p in target.rglob(name) if p.is_file() and not SKIP_DIRS & set(p.relative_to(target).parts)]
        if len(found) == 1:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[0], target / rel)
            notes.append(f"{found[0].relative_to(target)} graded as {rel}")
        elif len(found) > 1:
            notes.append(f"several files named {name} ({', '.join(str(p.relative_to(target)) for p in found)}): "
                         f"upload exactly one, as {rel}")
    return notes


HIDDEN_NOTE = "Checks on hidden cases ({points} points) are shown when grades are published."


def finalize(private: Path, status: int) -> Path:
    """private/final.json: the grader's results.json as the student may see it before publication, or (the
    grader failed or wrote nothing usable) a results.json that says only that grading failed, score 0;
    the detail is printed here, to run_autograder's output, which only instructors see.

    Before publication nothing visible adds up to the hidden result: hidden-case tests are
    `after_published` (Gradescope then hides the student's total score, per its specification), the
    top-level `score` is left out (Gradescope's total is then the sum of the tests, the same points), and
    the summary counts the public tests only."""
    private = Path(private)
    try:
        data = json.loads((private / "results.json").read_text())
        if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
            raise ValueError("not a results.json")
    except (OSError, ValueError) as exc:
        print(f"autograder: grading failed (exit status {status}; {type(exc).__name__}: {exc}); the student "
              "sees only that grading failed", flush=True)
        data = {"score": 0, "tests": [], "output": FAILED}
    else:
        hidden = [t for t in data["tests"] if t.get("visibility") in ("after_published", "hidden", "after_due_date")]
        visible = [t for t in data["tests"] if t not in hidden]
        hidden_max = sum(float(t.get("max_score") or 0) for t in hidden)
        if hidden:
            for test in hidden:
                test["visibility"] = "after_published"
            got = round(sum(float(t.get("score") or 0) for t in visible), 6)
            out_of = round(sum(float(t.get("max_score") or 0) for t in visible), 6)
            total = round(sum(float(t.get("score") or 0) for t in data["tests"]), 6)
            if "score" in data and abs(float(data["score"]) - total) > 1e-6:
                # the tests must carry every point before the top-level score can go
                raise ValueError(f"results.json: score {data['score']} is not the sum of its tests ({total})")
            data.pop("score", None)
            data["output"] = (f"Checks on public cases: {got:g}/{out_of:g} points. "
                              + HIDDEN_NOTE.format(points=f"{round(hidden_max, 6):g}"))
        data["stdout_visibility"] = "hidden"
    notes = (private / "arrange-notes.txt")
    if notes.is_file() and notes.read_text(errors="replace").strip():
        # the notes name the upload's files and folders, which the student chose: plain text, never markup
        from autograder.frontends.formats import md_text
        data["output"] = f"{data.get('output', '')}\n\nYour upload: {md_text(notes.read_text(errors='replace').strip())}"
        data["output_format"] = "md"
    final = private / "final.json"
    final.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return final


def _protect_tree(path: Path) -> None:
    """root:root and no access for group or others, the whole tree (links are left alone, not followed)."""
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in [None, *dirnames, *filenames]:
            target = Path(dirpath) if name is None else Path(dirpath) / name
            if target.is_symlink():
                continue
            os.chown(target, 0, 0)
            os.chmod(target, os.stat(target).st_mode & 0o7700)


def protect(root: Path, source: Path | None = None, results: Path | None = None) -> list[Path]:
    """Make the grader's files root's alone: the installed `autograder` package (this one), the source (the
    zip's contents, the secret) and the results folder. The Python runtime stays readable: the student's
    process needs it. Permissions, not a uid: any sandbox uid but root's is "other". Returns the paths."""
    if os.geteuid() != 0:
        raise PermissionError("protect runs as root (setup.sh and run_autograder do)")
    root = Path(root).resolve()
    package = Path(__file__).resolve().parent.parent  # the installed autograder/
    paths = [Path(source or root / "source"), Path(results or root / "results")]
    # The package is made root's only where Gradescope installs it (the venv under ROOT): never a
    # development checkout that happens to run these scripts.
    if package.is_relative_to(root):
        paths.insert(0, package)
    else:
        print(f"autograder: {package} is not under {root} (a development install?): left as it is")
    paths[-1].mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.exists():
            _protect_tree(path)
    return paths


def check_protected(paths: list[Path]) -> str:
    """'' when the sandbox user can reach none of `paths` (nor the grader's package), else the problem."""
    from autograder.sandbox import sandbox_user, verify_user
    _, _, problem = verify_user(sandbox_user(), protect=[str(p) for p in paths])
    return problem


def kill_sandbox() -> int:
    """SIGKILL every process of the uids the runner runs students' code as: the sandbox user's and the unnamed
    ones of its range (mechanisms._slot_uids; never another account's, which a range counted from the sandbox
    user's uid could be). Returns how many were signalled."""
    import pwd
    import signal
    from autograder.sandbox import sandbox_user
    from autograder.sandbox.mechanisms import _slot_uids  # the sandbox's own list of its uids
    entry = pwd.getpwnam(sandbox_user())
    uids = {uid for uid, _ in _slot_uids(entry.pw_uid, entry.pw_gid)} - {0}
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid in uids:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            pass
    return killed


def cmd_gradescope_package(args) -> int:
    from autograder.core.config import for_command as config_for
    secret = config_for(args).secret
    if not secret and not args.public_only:
        print("error: AUTOGRADER_SECRET is not set: hidden cases derive from it. Set it while packaging (it is "
              "embedded in the zip, which only instructors and Gradescope see), or pass --public-only",
              file=sys.stderr)
        return 2
    try:
        out = build_package(Path(args.output), assignments=args.assignment, public_only=args.public_only,
                            secret=secret)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: upload it in Gradescope's Configure Autograder (Ubuntu base image)", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("gradescope-package", help="build a Gradescope autograder zip (setup.sh, run_autograder)")
    p.add_argument("-o", "--output", default="autograder.zip")
    p.add_argument("-a", "--assignment", action="append", required=True,
                   help="the assignment this autograder grades (required; repeatable; one of micrograd, graphs, "
                        "backprop_ninja, micrograd_exercises): an upload is graded on these only, whatever else it holds")
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases")
    p.set_defaults(func=cmd_gradescope_package)


def main(argv: list[str] | None = None) -> int:
    """`python -m autograder.integrations.gradescope arrange UPLOAD TARGET -a NAME` / `finalize PRIVATE STATUS` /
    `protect --root R [--check]` / `kill-sandbox`: the steps of setup.sh and run_autograder around
    `autograder grade`."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m autograder.integrations.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("arrange")
    p.add_argument("upload")
    p.add_argument("target")
    p.add_argument("-a", "--assignment", action="append", required=True)
    p = sub.add_parser("finalize")
    p.add_argument("private")
    p.add_argument("status", type=int)
    p = sub.add_parser("protect")
    p.add_argument("--root", help="Gradescope's /autograder (default: $AUTOGRADER_ROOT, else /autograder)")
    p.add_argument("--source")
    p.add_argument("--results")
    p.add_argument("--check", action="store_true", help="then check, as the sandbox user, that none is reachable")
    sub.add_parser("kill-sandbox")
    args = parser.parse_args(argv)
    if args.command == "arrange":
        target = Path(args.target)
        notes = arrange_upload(Path(args.upload), target, args.assignment)
        (target.parent / "arrange-notes.txt").write_text("\n".join(notes))
        return 0
    if args.command == "protect":
        from autograder.core.config import Config
        root = Path(args.root) if args.root else Config.from_env().gradescope_root
        try:
            paths = protect(root, args.source and Path(args.source), args.results and Path(args.results))
        except OSError as exc:
            print(f"autograder: cannot protect the grader's files: {exc}", file=sys.stderr)
            return 1
        print("autograder: root's alone now: " + ", ".join(map(str, paths)))
        if args.check:
            problem = check_protected(paths)
            if problem:
                print(f"autograder: the sandbox user can still reach the grader's files: {problem}", file=sys.stderr)
                return 1
            print("autograder: checked as the sandbox user: none of them is reachable")
        return 0
    if args.command == "kill-sandbox":
        kill_sandbox()
        return 0
    finalize(Path(args.private), args.status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
