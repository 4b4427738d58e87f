"""Nothing of one notebook reaches the next one nbgrader autogrades with the same grading worker.

The nbgrader form of tests/test_cross_submission.py, on a real course (the repository's nbgrader_config.py,
graphs): notebook A is the reference solution plus every attack of tests/hostile/cross/ (tmp and /dev/shm
permissions and files, hidden inputs left behind, the server's limits and memory, processes, sockets, IPC,
descriptors), as notebook cells of the graded code; notebook B is the reference solution plus the victim
probe, which prints what B's process sees. nbgrader autogrades A before B with the course's preprocessor,
whose one runner per nbgrader process is the shared state under attack; then with `autograder
nbgrader-autograde --jobs 2` (two nbgrader processes, each grading an attacker first, then victims,
alongside the other). Each B must get exactly the gradebook scores and grade-cell outputs (the probe's
lines included) it gets autograded alone, and nothing of A may be in its autograded notebook or feedback.
Under each mechanism this machine has: bubblewrap, and the dedicated user (as root).

Also: with `run_kernel=True` a kernel cell reaches none of the course, the checkout or the network, each
target shown reachable from outside the kernel first (so the test can fail).
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from autograder.integrations.nbgrader import course as nbt
from test_cross_submission import ATTACKS, CROSS, mechanism, user_mechanism  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "graphs"
SECRET = "cross-submission-nbgrader-secret"
LAST_PART = "graphs-part8"      # the attacks and the probe are appended to the last solution cell

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandboxes are Linux's"),
              pytest.mark.xdist_group("isolation")]


def _as_function(name: str, source: str, returns: str) -> str:
    """A module-level snippet as a function run by a kept assignment: the notebook conversion keeps
    definitions and what they use, not bare statements, so the snippet still runs at every child's import."""
    return (f"\n\ndef _run_{name}():\n{textwrap.indent(source, '    ')}\n    return {returns}\n\n\n"
            f"_ran_{name} = _run_{name}()\n")


def attacker_code(tag: str) -> str:
    code = f"\n\nTAG = {tag!r}\n"
    for name in ATTACKS:
        code += _as_function(name, (CROSS / f"{name}.py").read_text(), "_leak")
    code += f"\n\n_LEAKS = [{', '.join(f'_ran_{name}' for name in ATTACKS)}]\n"
    code += textwrap.dedent('''

        def _leak_all(args, kwargs):
            for leak in _LEAKS:
                try:
                    leak((args, kwargs))
                except BaseException:
                    pass
        ''')
    # Every gate's inputs (the graph functions build their gates: their hidden inputs pass here too).
    for gate in ("AddGate", "MultiplyGate", "MaxGate", "SigmoidGate"):
        code += textwrap.dedent(f'''

            class {gate}({gate}):
                def forward(self, *args, **kwargs):
                    _leak_all(args, kwargs)
                    return super().forward(*args, **kwargs)
            ''')
    return code


def victim_code() -> str:
    return _as_function("probe", (CROSS / "victim_probe.py").read_text(), "None") + textwrap.dedent('''

        class AddGate(AddGate):
            probed = _ran_probe
        ''')


def notebook(course: Path, extra: str):
    release = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    source = nbt.load_notebook(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nb = nbt.solution_filled(release, source)
    nbt.edit_solution(nb, LAST_PART, lambda s: s + extra)
    return nb


def make_course(base: Path, submissions: dict[str, str]) -> Path:
    course = base / "course"
    nbt.make_course(course, [ASSIGNMENT])
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = 60\n")
    for student, extra in submissions.items():
        nbt.submit(course, ASSIGNMENT, student, notebook(course, extra))
    return course


def _env(mech) -> dict:
    # nbgrader's gradebook migrations run `alembic` from this environment's bin/ (mech.python may be another).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **mech.env, "AUTOGRADER_SECRET": SECRET, "PATH": path}


def autograde(mech, course: Path, jobs: int | None = None) -> None:
    """`nbgrader autograde` (one process, students in order) or `autograder nbgrader-autograde --jobs N`,
    both with the mechanism's interpreter, so the grading worker runs under it."""
    if jobs is None:
        argv = [mech.python, "-m", "nbgrader", "autograde", ASSIGNMENT]
    else:
        argv = [mech.python, "-m", "autograder", "nbgrader-autograde", ASSIGNMENT, "--course", str(course),
                "--jobs", str(jobs)]
    done = subprocess.run(argv, cwd=course, env=_env(mech), capture_output=True, timeout=1500)
    text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, text[-4000:]
    # The feedback runs no student code: this environment's nbgrader (mech.python's prefix has no nbconvert
    # templates).
    feedback = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", ASSIGNMENT], cwd=course,
                              env=_env(mech), capture_output=True, timeout=600)
    assert feedback.returncode == 0, (feedback.stdout + feedback.stderr).decode(errors="replace")[-3000:]


def autograded(course: Path, student: str) -> Path:
    return course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def grade_cells(course: Path, student: str) -> dict[str, str]:
    """grade cell id -> the text nbgrader shows for it (the exercise's table, printed output included),
    with the time grading took (`2.3 s)`) and the sandbox uid left out, the lines joined (rich wraps them)."""
    nb = nbt.load_notebook(autograded(course, student))
    out = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            text = "".join(o.get("text", "") or json.dumps(o.get("data", {})) for o in cell.outputs)
            text = re.sub(r"\b\d+(?:\.\d+)? s\)", "(time) s)", text)
            # Two nbgrader processes' runners each hold a uid of their own (the dedicated-user mechanism).
            text = re.sub(r"\(uid \d+(?:, one of its sandbox uids)?;", "(its uid;", text)
            out[meta["grade_id"]] = " ".join(text.split())
    return out


def everything_of(course: Path, student: str) -> str:
    """All nbgrader wrote for the student: the autograded notebook and the feedback."""
    paths = [p for sub in ("autograded", "feedback") for p in (course / sub / student).rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in paths), "no feedback was generated"
    return "\n".join(p.read_text(errors="replace") for p in paths)


@pytest.fixture(scope="module")
def solo(mechanism, tmp_path_factory) -> dict:
    """B autograded alone: what it must get and show after any A."""
    course = make_course(tmp_path_factory.mktemp(f"nb-solo-{mechanism.name}"), {"b-victim": victim_code()})
    autograde(mechanism, course)
    scores = nbt.gradebook_scores(course, ASSIGNMENT)["b-victim"]
    cells = grade_cells(course, "b-victim")
    assert sum(scores.values()) == 12, (scores, cells)
    assert all("PROBE " in text for text in cells.values()), "the probe did not run in every exercise"
    return {"scores": scores, "cells": cells}


def assert_same_as_solo(course: Path, student: str, solo: dict, scores: dict, tag: str) -> None:
    assert scores[student] == solo["scores"]
    cells = grade_cells(course, student)
    for cell, text in cells.items():
        assert text == solo["cells"][cell], f"{student} {cell} shows what it does not alone:\n{text[-3000:]}"
    assert tag not in everything_of(course, student), f"something of the attacker reached {student}"


def assert_attacked(course: Path, student: str) -> None:
    text = "\n".join(grade_cells(course, student).values())
    for name in ATTACKS:
        assert f"ATTACK-RAN {name}" in text, f"{name} did not run in {student}'s notebook"


@pytest.mark.timeout(2400)
def test_the_next_notebook_of_one_nbgrader_autograde_gets_its_solo_grade(mechanism, solo, tmp_path):
    tag = "xn" + os.urandom(5).hex()
    course = make_course(tmp_path, {"a-attacker": attacker_code(tag), "b-victim": victim_code()})
    autograde(mechanism, course)
    assert autograded(course, "a-attacker").stat().st_mtime <= autograded(course, "b-victim").stat().st_mtime
    assert_attacked(course, "a-attacker")
    assert_same_as_solo(course, "b-victim", solo, nbt.gradebook_scores(course, ASSIGNMENT), tag)


@pytest.mark.timeout(2400)
def test_the_same_under_parallel_autograde(mechanism, solo, tmp_path):
    """Two nbgrader processes (students split a0 b0 b2 / a1 b1 b3): each grades an attacker first, then
    victims, while the other's attacker and victims run alongside."""
    tag = "xn" + os.urandom(5).hex()
    students = {f"a{i}-attacker": attacker_code(tag) for i in range(2)}
    students.update({f"b{i}-victim": victim_code() for i in range(4)})
    course = make_course(tmp_path, students)
    autograde(mechanism, course, jobs=2)
    scores = nbt.gradebook_scores(course, ASSIGNMENT)
    assert set(scores) == set(students)
    for i in range(2):
        assert_attacked(course, f"a{i}-attacker")
    for i in range(4):
        assert_same_as_solo(course, f"b{i}-victim", solo, scores, tag)


# -- the kernel (run_kernel=True) --------------------------------------------------------------------------

KERNEL_PROBE = """
import os, socket
_seen = []
for _path in {targets!r}:
    try:
        open(_path, "rb").read(1) if os.path.isfile(_path) else os.listdir(_path)
        _seen.append(_path)
    except OSError:
        pass
for _address in {addresses!r}:
    try:
        socket.create_connection(tuple(_address), timeout=3).close()
        _seen.append(_address)
    except OSError:
        pass
print("KERNEL REACHED", _seen)
"""


@pytest.mark.timeout(1200)
def test_a_kernel_cell_reaches_nothing_of_the_course_the_checkout_or_the_network(tmp_path):
    """With run_kernel=True the notebook runs in a kernel (for the feedback's outputs). A cell tries the
    gradebook, a classmate's submission, the source and release notebooks, the course config, reference/,
    the grader's package, and a TCP server of this test on the loopback and on this machine's address;
    every target is first shown reachable from here, so a kernel that could reach one would fail."""
    from autograder.integrations.nbgrader.preprocessor import kernel_sandbox_prefix
    if not kernel_sandbox_prefix():
        pytest.skip("bubblewrap does not work here: run_kernel=True refuses")
    server = socket.create_server(("0.0.0.0", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [server.accept()[0].close() for _ in range(100)], daemon=True).start()
    addresses = [["127.0.0.1", port]]
    try:
        own = socket.gethostbyname(socket.gethostname())
        if not own.startswith("127."):
            addresses.append([own, port])
    except OSError:
        pass
    course = tmp_path / "course"
    nbt.make_course(course, [ASSIGNMENT])
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Autograde.autograde_preprocessors = autograde_preprocessors(run_kernel=True)\n"
                     "c.Execute.timeout = 60\n")
    release = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    source = nbt.load_notebook(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbt.submit(course, ASSIGNMENT, "classmate", nbt.solution_filled(release, source))
    nbt.run_nbgrader(["autograde", ASSIGNMENT, "--student", "classmate"], course, env={"AUTOGRADER_SECRET": SECRET})
    import autograder.sandbox.client as runner_module
    targets = [str(course / "gradebook.db"), str(course / "submitted" / "classmate"),
               str(course / "autograded" / "classmate"), str(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"),
               str(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), str(course / "nbgrader_config.py"),
               str(ROOT / "reference" / "graphs.py"), str(Path(runner_module.__file__)), str(ROOT / "tests")]
    for target in targets:  # each is there and readable from outside the kernel
        Path(target).read_bytes()[:1] if Path(target).is_file() else os.listdir(target)
    for address in addresses:
        socket.create_connection(tuple(address), timeout=3).close()
    prober = nbt.solution_filled(release, source)
    nbt.edit_solution(prober, "graphs-part2", lambda s: s + KERNEL_PROBE.format(targets=targets, addresses=addresses))
    nbt.submit(course, ASSIGNMENT, "prober", prober)
    proc = nbt.run_nbgrader(["autograde", ASSIGNMENT, "--student", "prober"], course,
                            env={"AUTOGRADER_SECRET": SECRET}, check=False)
    server.close()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    nb = nbt.load_notebook(autograded(course, "prober"))
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "graphs-part2")
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "KERNEL REACHED []" in text, cell.outputs  # the kernel ran the cell, and reached nothing
