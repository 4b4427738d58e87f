"""End to end through the real nbgrader CLI and its sqlite gradebook, on a temporary course built from the
repository's own nbgrader_config.py and generated source notebook (graphs: the smallest assignment).

Plain `nbgrader autograde` with the course config grades outside the kernel (our preprocessor): each
submission gets the score its code earns whatever its cells do in the kernel, the kernel never holds the
secret, and `autograder grade` and `grade-all` give every notebook the same scores as the gradebook.
One course, four submissions, autograded once (a module-scoped fixture): each costs a kernel."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autograder import nbgrader_tools as nbt
from autograder.assignments import exercises
from autograder.notebooks import grade_id

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
                "import autograder.nbgrader_tools as _t\n"
                "_t.notebook_grade = lambda exercise_id, points=None, **kw: points\n"
                "get_ipython().ast_node_interactivity = 'none'\n")
# Prints the secret wherever the kernel could find it (its environment, its parent's).
LEAK = ("\nimport os\nprint('SECRET:', os.environ.get('AUTOGRADER_SECRET'))\n"
        "print('PARENT:', open(f'/proc/{os.getppid()}/environ', 'rb').read())\n")


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
    return {"patched": patched, "leaky": leaky, "broken": broken, "one-mistake": mistake}


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


def test_the_kernel_writes_nothing_and_leaves_no_process(course):
    """Where bubblewrap works the kernel runs read-only in its own pid namespace: no course file is
    written, and the process a cell started in its own session is gone with the kernel."""
    import psutil
    from autograder.nbgrader_preprocessor import kernel_sandbox_prefix
    if not kernel_sandbox_prefix():
        pytest.skip("bubblewrap does not work on this machine: the kernel runs unsandboxed")
    text = "".join(o.get("text", "") for o in _cell(course, "patched", "graphs-part2").outputs)
    assert "REFUSED ../../../gradebook.db" in text and "WROTE" not in text
    assert not (course["path"] / "written-by-a-kernel.txt").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sh", "-c", "sleep 600"]]


def test_correct_code_earns_full_marks_whatever_else_its_cells_do(course):
    assert course["scores"]["leaky"] == POINTS
    cell = _cell(course, "leaky", "graphs-part5")   # the kernel interrupted the loop; it does not count
    assert any(o.get("ename") in ("CellTimeoutError", "KeyboardInterrupt") for o in cell.outputs)


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


def test_the_kernel_never_holds_the_secret(course):
    files = [p for sub in ("autograded", "feedback") for p in (course["path"] / sub).rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files)
    leaked = _cell(course, "leaky", "graphs-part2")
    assert "SECRET: None" in "".join(o.get("text", "") for o in leaked.outputs)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


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
