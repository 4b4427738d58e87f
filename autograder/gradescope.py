"""`autograder gradescope-package -o autograder.zip`: the zip Gradescope's "Configure Autograder" takes.

Gradescope's specification: the zip's root holds `setup.sh` (run once while the image is built; it
installs the dependencies) and `run_autograder` (run per submission, in /autograder, with the
student's files in /autograder/submission; it must write /autograder/results/results.json). Both are
written here; the zip also carries a wheel of this package built from the checkout, the pinned
constraints (torch included), and, when AUTOGRADER_SECRET is set while packaging, the secret the
hidden cases derive from (the zip is only ever seen by instructors and Gradescope).

`run_autograder` reads its paths from AUTOGRADER_SOURCE, AUTOGRADER_SUBMISSION, AUTOGRADER_RESULTS and AUTOGRADER_BIN
when they are set, so it can be run here against a temporary folder with the installed package.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE")
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once while building the autograder image (Ubuntu): a virtual environment with
# this package and its pinned dependencies (torch CPU wheels from PyTorch's index).
set -euxo pipefail
cd /autograder/source
if ! python3 -m venv --help >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1; then
  apt-get update -qq
  # python3-venv for the environment; bubblewrap sandboxes the student's code (the grader degrades without it)
  apt-get install -y -qq python3 python3-venv python3-pip bubblewrap || apt-get install -y -qq python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --upgrade pip
/autograder/venv/bin/python -m pip install --quiet -c constraints.txt --extra-index-url {torch_index} {wheel}
/autograder/venv/bin/autograder --help >/dev/null
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades the submission (a folder, a zip or a notebook
# in it) on the public and hidden cases and writes Gradescope's results.json. Whatever happens, a
# results.json is written: a grader failure is reported with score 0 rather than as a broken run.
set -uo pipefail
SOURCE="${{AUTOGRADER_SOURCE:-/autograder/source}}"
SUBMISSION="${{AUTOGRADER_SUBMISSION:-/autograder/submission}}"
RESULTS="${{AUTOGRADER_RESULTS:-/autograder/results}}"
BIN="${{AUTOGRADER_BIN:-/autograder/venv/bin}}"
mkdir -p "$RESULTS"
if [ -f "$SOURCE/secret" ]; then export AUTOGRADER_SECRET="$(cat "$SOURCE/secret")"; fi
rm -f "$RESULTS/results.json"
"$BIN/autograder" grade "$SUBMISSION" --format gradescope -o "$RESULTS/results.json" {grade_args} 2>"$RESULTS/grader-stderr.txt"
status=$?
cat "$RESULTS/grader-stderr.txt" >&2
if [ ! -s "$RESULTS/results.json" ]; then
  "$BIN/python" - "$RESULTS" "$status" <<'PY' || printf '{{"score": 0, "output": "The autograder failed.", "tests": []}}\\n' > "$RESULTS/results.json"
import json, pathlib, sys
results = pathlib.Path(sys.argv[1])
err = (results / "grader-stderr.txt").read_text(errors="replace")[-2000:]
text = "The autograder failed (exit status %s); please tell your instructor.\\n\\n" % sys.argv[2] + err
(results / "results.json").write_text(json.dumps({{"score": 0, "output": text, "tests": []}}))
PY
fi
exit 0
"""


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


def build_package(output: Path, *, assignments: list[str] | None = None, public_only: bool = False,
                  secret: str | None = None, repo: Path = REPO_ROOT) -> Path:
    output = Path(output)
    grade_args = " ".join(f"-a {shlex.quote(a)}" for a in assignments or [])
    if public_only:
        grade_args += " --public-only"
    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        wheel = build_wheel(Path(tmp), repo)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        with zipfile.ZipFile(partial, "w") as zf:
            _add(zf, "setup.sh", SETUP_SH.format(torch_index=TORCH_INDEX, wheel=f"dist/{wheel.name}"), executable=True)
            _add(zf, "run_autograder", RUN_AUTOGRADER.format(grade_args=grade_args.strip()), executable=True)
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


def cmd_gradescope_package(args) -> int:
    secret = os.environ.get("AUTOGRADER_SECRET")
    if not secret and not args.public_only:
        print("warning: AUTOGRADER_SECRET is not set, so hidden cases use the default secret, which is public; "
              "set it while packaging to embed your own", file=sys.stderr)
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
    p.add_argument("-a", "--assignment", action="append", help="grade only this assignment (repeatable)")
    p.add_argument("--public-only", action="store_true", help="skip the hidden cases")
    p.set_defaults(func=cmd_gradescope_package)
