"""End to end through the real nbgrader CLI and its sqlite gradebook, on a temporary course built from the
repository's own nbgrader_config.py and generated source notebook (graphs: the smallest assignment).

Plain `nbgrader autograde` with the course config grades outside the kernel (our preprocessor) and runs
no Jupyter kernel at all: each submission gets the score its code earns, whatever its cells would do in
a kernel; the student's code runs only in the grader's sandbox, which sees none of the course, the
checkout or the network; `autograder grade` and `grade-all` give every notebook the same scores as the
gradebook, and name a deleted or edited grade cell the same way. One course, autograded once."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autograder.integrations.nbgrader import tools as nbt
from autograder.assignments import exercises
from autograder.authoring.notebooks import grade_id

pytestmark = pytest.mark.xdist_group("nbgrader")

ASSIGNMENT = "graphs"
SECRET = "e2e-secret-5f1c9a"     # the course's AUTOGRADER_SECRET in these tests
CELL_TIMEOUT = 20                # nbgrader's per-cell timeout in the test course (the course's: 120 s; torch imports in 1)
POINTS = {grade_id(ex.id): float(ex.points) for ex in exercises(ASSIGNMENT)}

# Replaces what the grade cells call, in the kernel, and hides every cell's value: the old in-kernel
# grading gave 12/12 for either.
KERNEL_PATCH = ("\nimport os, subprocess\n"
                "for target in ('../../../gradebook.db', '../../../written-by-a-kernel.txt'):\n"
                "    try:\n        open(target, 'ab').close()\n        print('WROTE', target)\n"
                "    except OSError as exc:\n        print('REFUSED', target, exc)\n"
                "subprocess.Popen(['sh', '-c', 'sleep 600'], start_new_session=True)\n"
                "import autograder.integrations.nbgrader.kernel as _t\n"
                "_t.notebook_grade = lambda exercise_id, points=None, **kw: points\n"
                "get_ipython().ast_node_interactivity = 'none'\n")
# Prints the secret wherever the kernel could find it (its environment, its parent's).
LEAK = ("\nimport os\nprint('SECRET:', os.environ.get('AUTOGRADER_SECRET'))\n"
        "print('PARENT:', open(f'/proc/{os.getppid()}/environ', 'rb').read())\n")


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
PROBE = """

def _reached(targets):
    import os, socket
    out = []
    for path in targets:
        try:
            open(path, "rb").read(1) if os.path.isfile(path) else os.listdir(path)
            out.append(path)
        except OSError:
            pass
    for address in (("127.0.0.1", 80), ("1.1.1.1", 53)):
        try:
            socket.create_connection(address, timeout=2).close()
            out.append(address)
        except OSError:
            pass
    return out


REACHED = _reached({targets!r})


class AddGate(AddGate):
    def backward(self, dout):
        return (0.0, 0.0) if REACHED else super().backward(dout)
"""


def _submissions(course) -> dict:
    release = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    source = nbt.load_notebook(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    patched = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")  # nothing solved
    nbt.edit_solution(patched, "graphs-part2", lambda s: s + KERNEL_PATCH)
    leaky = nbt.solution_filled(release, source)      # all correct, prints the secret, loops at top level
    nbt.edit_solution(leaky, "graphs-part2", lambda s: s + LEAK)
    nbt.edit_solution(leaky, "graphs-part5",
                      lambda s: s + "\nimport time\nwhile True:  # sleeps: spares the CPU\n    time.sleep(0.05)\n")
    broken = nbt.solution_filled(release, source)     # a syntax error in MultiplyGate's cell
    nbt.edit_solution(broken, "graphs-part3", nbt.replace_once("def backward(self, dout):", "def backward(self, dout)"))
    mistake = nbt.solution_filled(release, source)
    nbt.edit_solution(mistake, *nbt.DEMO_MISTAKES[ASSIGNMENT])
    # Correct code whose AddGate goes wrong if its module (run in the grader's sandbox) reached anything of
    # the course, the checkout or the network: its score is the evidence.
    prober = nbt.solution_filled(release, source)
    targets = [str(course / "gradebook.db"), str(course / "submitted" / "one-mistake"),
               str(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), str(course / "nbgrader_config.py"),
               str(ROOT / "reference" / "graphs.py"), str(ROOT / "autograder" / "core" / "pipeline.py")]
    # The checkout's files exist (a file that moved away would make the probe unable to fail).
    assert all(os.path.exists(t) for t in targets[-2:]), targets
    nbt.edit_solution(prober, "graphs-part2", lambda s: s + PROBE.format(targets=targets))
    # A grade cell deleted, another edited.
    tampered = nbt.solution_filled(release, source)
    tampered.cells = [c for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "graphs-AddGate"]
    for cell in tampered.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "graphs-MaxGate":
            cell.source += "\nprint('full marks please')"
    return {"patched": patched, "leaky": leaky, "broken": broken, "one-mistake": mistake, "prober": prober,
            "tampered": tampered}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbgrader-e2e")
    course = base / "course"
    nbt.make_course(course, [ASSIGNMENT])
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_TIMEOUT}\n")
    for student, nb in _submissions(course).items():
        nbt.submit(course, ASSIGNMENT, student, nb)
    proc = nbt.run_nbgrader(["autograde", ASSIGNMENT], course, env={"AUTOGRADER_SECRET": SECRET}, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    nbt.run_nbgrader(["generate_feedback", ASSIGNMENT], course)
    return {"path": course, "scores": nbt.gradebook_scores(course, ASSIGNMENT), "base": base}


def _cell(course, student, cell_id):
    nb = nbt.load_notebook(course["path"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id)


def test_a_kernel_patch_of_the_grader_earns_nothing(course):
    assert course["scores"]["patched"] == {cell: 0.0 for cell in POINTS}


def test_no_kernel_runs_the_students_cells(course):
    """No Jupyter kernel runs a submission's cells: nothing is written, no process left, no output."""
    import psutil
    assert not (course["path"] / "written-by-a-kernel.txt").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sh", "-c", "sleep 600"]]
    assert _cell(course, "patched", "graphs-part2").outputs == []


def test_the_students_code_reaches_nothing_of_the_course_checkout_or_network(course):
    """Issue 15 item 2: the code of a notebook (run in the grader's sandbox, the only place it runs) tries
    the gradebook, a classmate's submission, the source notebook, the course config, reference/, the
    grader's package and two sockets; had it reached any, AddGate would be wrong."""
    from autograder.sandbox import choose_mechanism
    if not choose_mechanism().isolated:
        pytest.skip("no isolation mechanism on this machine")
    assert course["scores"]["prober"] == POINTS


def test_correct_code_earns_full_marks_whatever_else_its_cells_do(course):
    assert course["scores"]["leaky"] == POINTS  # its top-level loop and prints are left out of the module


def test_a_deleted_or_edited_grade_cell_is_named_alike_in_the_gradebook_and_by_grade(course, tmp_path):
    """The gradebook gave a deleted grade cell "needs manual grading" (11) where `grade` gave 12: the cell
    is put back and graded; both say which cell was deleted and which edited."""
    assert course["scores"]["tampered"] == POINTS
    deleted = _cell(course, "tampered", "graphs-AddGate").outputs[0].text
    edited = _cell(course, "tampered", "graphs-MaxGate").outputs[0].text
    assert "grade cell (graphs-AddGate) is missing from the submitted notebook" in deleted
    assert "grade cell (graphs-MaxGate) was edited" in edited
    env = {**os.environ, "AUTOGRADER_SECRET": SECRET}
    path = course["path"] / "submitted" / "tampered" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "-a", ASSIGNMENT],
                          capture_output=True, text=True, env=env, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exercises_ = {e["id"]: e for e in json.loads(proc.stdout)["exercises"]}
    assert "grade cell (graphs-AddGate) is missing from the submitted notebook" in exercises_["graphs.AddGate"]["message"]
    assert "grade cell (graphs-MaxGate) was edited" in exercises_["graphs.MaxGate"]["message"]
    assert {grade_id(i): e["score"] for i, e in exercises_.items()} == pytest.approx(course["scores"]["tampered"])


def test_a_mistake_and_a_syntax_error_lose_only_their_exercises(course):
    scores = course["scores"]
    assert {c for c, s in scores["one-mistake"].items() if s < POINTS[c]} == {"graphs-l2_of_matvec"}
    lost = {c for c, s in scores["broken"].items() if s < POINTS[c]}
    # MultiplyGate's cell does not parse: it is left out, and what uses MultiplyGate fails with it.
    assert "graphs-MultiplyGate" in lost and "graphs-AddGate" not in lost and "graphs-MaxGate" not in lost


def test_grade_cells_show_the_table_on_stdout_and_their_score(course):
    cell = _cell(course, "one-mistake", "graphs-l2_of_matvec")
    assert [o.output_type for o in cell.outputs] == ["stream", "execute_result"]
    assert cell.outputs[0].name == "stdout" and "graphs.l2_of_matvec" in cell.outputs[0].text
    assert float(cell.outputs[1].data["text/plain"]) == course["scores"]["one-mistake"]["graphs-l2_of_matvec"]


def test_the_secret_is_in_no_output(course):
    files = [p for sub in ("autograded", "feedback") for p in (course["path"] / sub).rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_process_of_the_same_user_cannot_read_the_graders_secret(tmp_path):
    """--unsandboxed runs the student's code as the grader's user: /proc/<grader>/environ (the initial
    environment, which os.environ.pop does not change), its fds and memory must still be closed to it.
    Both processes run as an unprivileged uid here (root could read anything)."""
    import pwd
    import shutil
    import site
    if os.geteuid() != 0:
        pytest.skip("needs root to run both processes as one unprivileged user")
    nobody = pwd.getpwnam("nobody")
    # This interpreter may sit where nobody cannot go (/root/.pyenv): the system's of the same version, with
    # this environment's packages.
    python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if not python:
        pytest.skip("no system Python of this version for an unprivileged user")
    pythonpath = os.pathsep.join([str(ROOT)] + site.getsitepackages())
    grader = subprocess.Popen(
        [python, "-c", "import sys, time; from autograder.integrations.nbgrader.preprocessor import take_secret; "
                       "take_secret(); print('ready', flush=True); time.sleep(60)"],
        env={**os.environ, "AUTOGRADER_SECRET": SECRET, "PYTHONPATH": pythonpath}, user=nobody.pw_uid,
        group=nobody.pw_gid, extra_groups=[], stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert grader.stdout.readline().strip() == "ready"
        probe = f"""
import os
pid = {grader.pid}
found = []
for name in ("environ", "cmdline", "mem"):
    try:
        with open(f"/proc/{{pid}}/{{name}}", "rb") as f:
            if {SECRET.encode()!r} in f.read(1 << 20):
                found.append(name)
    except OSError:
        pass
try:
    for fd in os.listdir(f"/proc/{{pid}}/fd"):
        found.append("fd")
except OSError:
    pass
print(found)
"""
        run = subprocess.run([python, "-c", probe], user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                             capture_output=True, text=True, cwd="/", timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
    finally:
        grader.kill()
        grader.wait()


def test_grade_and_grade_all_give_the_gradebooks_scores(course, tmp_path):
    env = {**os.environ, "AUTOGRADER_SECRET": SECRET}
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for student in course["scores"]:
        src = course["path"] / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        (folder / f"{student}.ipynb").write_bytes(src.read_bytes())
    out = tmp_path / "grades"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(folder), "-o", str(out),
                           "--jobs", "1", "-a", ASSIGNMENT], capture_output=True, text=True, env=env, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for student, cells in course["scores"].items():
        batch = {grade_id(e["id"]): e for e in json.loads((out / f"{student}.json").read_text())["exercises"]}
        for cell, points in cells.items():
            assert batch[cell]["score"] / batch[cell]["max_score"] * POINTS[cell] == pytest.approx(points, abs=1e-4), (student, cell)
    # `autograder grade` on two of them (the batch used the same pipeline in other processes)
    for student in ("broken", "patched"):
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder / f"{student}.ipynb"),
                               "-a", ASSIGNMENT], capture_output=True, text=True, env=env, timeout=200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = {grade_id(e["id"]): e["score"] for e in json.loads(proc.stdout)["exercises"]}
        assert result == pytest.approx(course["scores"][student], abs=1e-4), student


def test_autograde_refuses_without_the_secret(course):
    proc = nbt.run_nbgrader(["autograde", ASSIGNMENT, "--student", "one-mistake", "--force"], course["path"],
                            env={"AUTOGRADER_SECRET": ""}, check=False)
    assert proc.returncode != 0
    assert "AUTOGRADER_SECRET is not set" in proc.stdout + proc.stderr
    assert "GradeOutsideKernel.public_only" in proc.stdout + proc.stderr


def test_nbgrader_autograde_command_refuses_before_starting_nbgrader(course):
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_SECRET"}
    proc = subprocess.run([sys.executable, "-m", "autograder", "nbgrader-autograde", ASSIGNMENT, "--course",
                           str(course["path"]), "--jobs", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "refusing to grade for credit" in proc.stderr
    assert "--public-only" in proc.stderr


KERNEL_PROBE = """
import os, socket
_seen = []
for _path in {targets!r}:
    try:
        open(_path, "rb").read(1) if os.path.isfile(_path) else os.listdir(_path)
        _seen.append(_path)
    except OSError:
        pass
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    _seen.append("network")
except OSError:
    pass
print("KERNEL REACHED", _seen, "CWD", os.getcwd())
"""


def test_with_run_kernel_the_kernel_sees_only_the_notebook(tmp_path):
    """run_kernel=True (the kernel runs the notebook for the feedback's outputs): a cell tries the gradebook,
    a classmate's submission, the source notebook, reference/ and the network, and reaches none; the
    scores still come from the grader."""
    from autograder.integrations.nbgrader.preprocessor import kernel_sandbox_prefix
    if not kernel_sandbox_prefix():
        pytest.skip("bubblewrap does not work here: run_kernel=True refuses")
    course = tmp_path / "course"
    nbt.make_course(course, [ASSIGNMENT])
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Autograde.autograde_preprocessors = autograde_preprocessors(run_kernel=True)\n"
                     f"c.Execute.timeout = {CELL_TIMEOUT}\n")
    release = nbt.load_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    source = nbt.load_notebook(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbt.submit(course, ASSIGNMENT, "classmate", nbt.solution_filled(release, source))
    prober = nbt.solution_filled(release, source)
    targets = [str(course / "gradebook.db"), str(course / "submitted" / "classmate"),
               str(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), str(ROOT / "reference" / "graphs.py"),
               str(ROOT / "autograder" / "core" / "pipeline.py")]
    assert all(os.path.exists(t) for t in targets), targets  # reachable from here: the probe can fail
    nbt.edit_solution(prober, "graphs-part2", lambda s: s + KERNEL_PROBE.format(targets=targets))
    nbt.submit(course, ASSIGNMENT, "prober", prober)
    proc = nbt.run_nbgrader(["autograde", ASSIGNMENT], course, env={"AUTOGRADER_SECRET": SECRET}, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    nb = nbt.load_notebook(course / "autograded" / "prober" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "graphs-part2")
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "KERNEL REACHED [] CWD" in text, cell.outputs  # the kernel ran the cell, and reached nothing
    assert nbt.gradebook_scores(course, ASSIGNMENT)["prober"] == POINTS
