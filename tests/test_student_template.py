"""A newcomer's first ten minutes: `make templates` keeps a student's edits, a typo in `-a` lists the
assignments, `python backprop_ninja.py` prints the cmp table then trains and samples (or says what to fill)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.frontends import cli
from autograder.authoring.templating import MANIFEST, EditedFiles, generate, read_manifest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def course(tmp_path) -> Path:
    """A copy of reference/ with its generated student_template/ (as `make templates` writes it)."""
    shutil.copytree(ROOT / "reference", tmp_path / "reference", ignore=shutil.ignore_patterns("__pycache__"))
    generate(tmp_path)
    return tmp_path


def test_generate_writes_a_manifest_of_what_it_wrote(course):
    manifest = read_manifest(course / "student_template")
    assert {"backprop_ninja.py", "graphs.py", "micrograd/engine.py", "README.md",
            "notebooks/backprop_ninja.ipynb"} <= set(manifest)
    assert generate(course, check=True) == []


def test_a_students_edits_are_never_overwritten(course):
    template = course / "student_template"
    mine = template / "graphs.py"
    work = mine.read_text().replace("# YOUR CODE HERE", "# my work in progress", 1)
    mine.write_text(work)
    own = template / "helpers.py"
    own.write_text("def helper():\n    return 1\n")
    # The reference changes: both the edited file and another one would be regenerated.
    for name in ("graphs.py", "backprop_ninja.py"):
        path = course / "reference" / name
        path.write_text(path.read_text() + "\n# a new comment\n")
    with pytest.raises(EditedFiles) as raised:
        generate(course)
    assert raised.value.paths == [mine] and "graphs.py" in str(raised.value) and "--force" in str(raised.value)
    assert mine.read_text() == work                                   # kept as the student left it
    assert (template / "backprop_ninja.py").read_text().endswith("# a new comment\n")  # the unedited one updated
    assert own.read_text() == "def helper():\n    return 1\n"          # never generated: never removed
    with pytest.raises(EditedFiles):                                  # still refused on the next run
        generate(course)
    # The command says so and fails; --force overwrites.
    assert cli.main(["templates", "--root", str(course)]) == 1
    assert mine.read_text() == work
    assert cli.main(["templates", "--root", str(course), "--force"]) == 0
    assert mine.read_text().endswith("# a new comment\n") and "my work in progress" not in mine.read_text()
    assert own.exists() and generate(course, check=True) == []


def test_an_unedited_generated_file_whose_reference_is_gone_is_removed(course):
    (course / "reference" / "extra.py").write_text("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    generate(course)
    assert (course / "student_template" / "extra.py").is_file()
    (course / "reference" / "extra.py").unlink()
    generate(course)
    assert not (course / "student_template" / "extra.py").exists()
    assert "extra.py" not in read_manifest(course / "student_template")


def test_a_missing_manifest_protects_every_differing_file(course):
    (course / "student_template" / MANIFEST).unlink()
    path = course / "reference" / "graphs.py"
    path.write_text(path.read_text() + "\n# changed\n")
    with pytest.raises(EditedFiles):
        generate(course)
    generate(course, force=True)
    assert generate(course, check=True) == []


@pytest.mark.parametrize("command", [["check"], ["grade", "x"], ["report"]])
def test_a_typo_in_the_assignment_lists_the_assignments(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "-a", "grpahs"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'grpahs'" in err and all(n in err for n in ("micrograd", "graphs", "backprop_ninja"))
    assert "Traceback" not in err


def _run_ninja(directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, BACKPROP_NINJA_STEPS="30")
    return subprocess.run([sys.executable, "backprop_ninja.py"], cwd=directory, env=env, capture_output=True,
                          text=True, timeout=240)


def test_python_backprop_ninja_prints_cmp_then_trains_and_samples():
    run = _run_ninja(ROOT / "reference")
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    table, training = out.index("logprobs "), out.index("training 30 steps")
    assert table < training
    assert out.count("approximate: True") + out.count("exact: True") >= 26 and "approximate: False" not in out
    assert "val loss" in out and "names sampled from your model:" in out
    names = out.split("names sampled from your model:")[1].split()
    assert len(names) == 10 and all(n.isalpha() and n.islower() for n in names)


def test_python_backprop_ninja_on_the_template_says_what_to_fill():
    run = _run_ninja(ROOT / "student_template")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "not implemented (returned None)" in run.stdout
    assert "not yet: `forward_backward` is not implemented" in run.stdout


def _run_graphs(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "graphs.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "graphs.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_python_graphs_prints_one_line_per_function_never_a_traceback(tmp_path):
    """Issue 17: a function that raises (here a dW of the wrong shape, which gradcheck refuses) is one FAILED
    line naming the exception and the line; the others still print; a stub says to fill it."""
    reference = (ROOT / "reference" / "graphs.py").read_text()
    run = _run_graphs(reference, tmp_path)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 7 and all("gradcheck ok" in line for line in lines), run.stdout
    broken = reference.replace("dW = torch.outer(dq, x)       # dW[i, j] = dq[i] * x[j]", "dW = torch.outer(x, dq)")
    assert broken != reference
    broken = broken.replace("        return dout, dout\n", "        raise NotImplementedError()\n", 1)
    run = _run_graphs(broken, tmp_path)
    assert run.returncode == 0 and "Traceback" not in run.stderr + run.stdout, run.stderr[-2000:]
    out = {line.split()[0]: line for line in run.stdout.splitlines()}
    assert "FAILED" in out["l2_of_matvec"] and "has shape (4, 3) but the input has shape (3, 4)" in out["l2_of_matvec"]
    assert "not implemented yet: fill in AddGate.backward" in out["AddGate"]
    assert "FAILED" not in out["MultiplyGate"] and "FAILED" not in out["sigmoid_neuron"]
    # an exception in the student's code: its type, message and the student's own line
    broken = reference.replace("        dy = self.x * dout\n", "        dy = self.z * dout\n")
    assert broken != reference
    out = {line.split()[0]: line for line in _run_graphs(broken, tmp_path).stdout.splitlines()}
    assert "FAILED: AttributeError" in out["MultiplyGate"] and "dy = self.z * dout" in out["MultiplyGate"], out
