"""`check()` in a notebook: the module built from the cells, grading it, and the shipped student notebooks
executed by nbclient (the stub: not_implemented; filled in from the reference: full marks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.integrations.notebook_check import NotebookCheckError, build_module, cell_definitions, check

ROOT = Path(__file__).resolve().parent.parent


def _without_main(path: Path) -> str:
    source = path.read_text()
    return source[:source.index('if __name__ == "__main__":')] if "__main__" in source else source


def test_the_last_definition_run_wins_and_only_what_is_needed_is_kept():
    cells = [
        "import torch\nimport matplotlib.pyplot as plt\nfrom backprop_ninja import forward\n",
        "EPS = 1e-5\nloss = torch.zeros(())  # a notebook global, not needed by any graded function\n",
        "def tanh_backward(h, dh):\n    return None\n",
        "def helper(h):\n    loss = 1 - h**2  # a local, not the global `loss`\n    return loss * (1 + EPS - EPS)\n",
        "@torch.no_grad()\ndef tanh_backward(h, dh):\n    return helper(h) * dh\n",
        "def plot(x):\n    plt.imshow(x)\n",
        "def broken(:\n",
    ]
    source, notes = build_module(cells, "backprop_ninja")
    namespace: dict = {}
    exec(compile(source, "<built>", "exec"), namespace)
    import torch
    h, dh = torch.tensor([0.5]), torch.tensor([2.0])
    assert torch.allclose(namespace["tanh_backward"](h, dh), (1 - h**2) * dh)  # the second definition
    assert "return None" not in source and "EPS = 1e-5" in source and "@torch.no_grad()" in source
    assert "matplotlib" not in source and "def plot" not in source and "loss = torch.zeros" not in source
    assert "from backprop_ninja" not in source  # the assignment's own module is the notebook itself
    assert any("cell 6" in n and "does not parse" in n for n in notes)
    assert any("not defined in this notebook" in n and "manual_backward" in n for n in notes)


def test_torch_used_only_by_a_comparison_cell_does_not_break_micrograd():
    engine = _without_main(ROOT / "reference" / "micrograd" / "engine.py")
    nn = (ROOT / "reference" / "micrograd" / "nn.py").read_text().replace("from micrograd.engine import Value", "")
    cells = ["import torch\n", engine, nn, "def compare_with_torch(x):\n    return torch.tensor(x)\n"]
    source, _ = build_module(cells, "micrograd")
    assert "import torch" not in source and "class Value" in source and "class MLP" in source
    found, _ = cell_definitions(cells, {"micrograd"})
    assert {"Value", "MLP", "compare_with_torch", "torch"} <= set(found)


def test_deleted_names_are_not_graded():
    cells = ["def tanh_backward(h, dh):\n    return (1 - h**2) * dh\n"]
    source, notes = build_module(cells, "backprop_ninja", namespace={})
    assert "tanh_backward" not in source and any("tanh_backward" in n for n in notes)


def test_check_grades_cells_with_the_pipeline(runner):
    reference = _without_main(ROOT / "reference" / "graphs.py")
    full = check("graphs", cells=[reference], runner=runner)
    assert full.result.score == full.result.max_score == 12
    assert "Total: 12 / 12" in full._repr_html_() and "12/12" in repr(full).replace(" ", "")
    stub = check("graphs", cells=[_without_main(ROOT / "student_template" / "graphs.py")], runner=runner)
    assert stub.result.score == 0
    assert {c.verdict for e in stub.result.exercises for c in e.checks} == {"not_implemented"}
    # a guess from the definitions when no assignment is named; an unknown one is named as such
    assert check(cells=[reference], runner=runner).result.exercises[0].id.startswith("graphs.")
    with pytest.raises(NotebookCheckError, match="unknown assignment 'grpahs'"):
        check("grpahs", cells=[reference], runner=runner)
    with pytest.raises(NotebookCheckError, match="nothing to grade"):
        check(cells=["x = 1\n"], runner=runner)


def test_html_of_the_result_escapes_the_students_text(runner):
    evil = ("def tanh_backward(h, dh):\n    raise ValueError('<script>alert(1)</script>')\n\n"
            "def embedding_backward(Xb, demb, num_embeddings):\n    print('<b>printed</b>')\n")
    result = check("backprop_ninja", cells=[evil], runner=runner)
    page = result._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>printed" not in page and "&lt;b&gt;printed&lt;/b&gt;" in page and "What your code printed" in page


def test_outside_ipython_without_cells_says_how_to_use_it():
    with pytest.raises(NotebookCheckError, match="Jupyter"):
        check("graphs")


# -- the shipped notebooks, executed ---------------------------------------------------------------------------

import importlib.util  # noqa: E402

import nbformat  # noqa: E402

needs_kernel = pytest.mark.skipif(
    importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipykernel") is None,
    reason="nbclient or ipykernel is not installed: the notebooks cannot be executed here")


def _execute(nb, tmp_path, monkeypatch):
    import nbclient
    monkeypatch.setenv("BACKPROP_NINJA_STEPS", "20")  # the "try it" cell trains: a few steps are enough here
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def _outputs(cell) -> str:
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            texts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
        texts.append(output.get("text", ""))
        data = output.get("data", {})
        texts.append(data.get("text/html", "") + data.get("text/plain", ""))
    return "\n".join(texts)


@needs_kernel
def test_stub_notebook_runs_without_errors_and_checks_not_implemented(tmp_path, monkeypatch):
    nb = nbformat.read(ROOT / "student_template" / "notebooks" / "backprop_ninja.ipynb", as_version=4)
    _execute(nb, tmp_path, monkeypatch)  # raises CellExecutionError on any error
    check_cell = nb.cells[-1]
    assert check_cell.source.strip().endswith('check(\'backprop_ninja\')')
    html = next(o["data"]["text/html"] for o in check_cell.outputs if "text/html" in o.get("data", {}))
    assert "Total: 0 / 50" in html and "not_implemented" in html and "<table" in html
    try_it = next(c for c in nb.cells if c.get("id") == "try-backprop_ninja")
    assert "not yet: `forward_backward` is not implemented" in _outputs(try_it)


@needs_kernel
@pytest.mark.parametrize("assignment, total", [("backprop_ninja", 50), ("micrograd", 25), ("micrograd_exercises", 15)])
def test_filled_in_notebook_gets_full_marks(assignment, total, tmp_path, monkeypatch):
    from autograder.assignments import exercises
    from autograder.authoring.notebooks import assignment_files
    from autograder.authoring.student_notebooks import student_notebook
    nb = student_notebook(assignment, assignment_files(ROOT, exercises(assignment)), exercises(assignment),
                          solutions=True)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    _execute(nb, tmp_path, monkeypatch)
    html = next(o["data"]["text/html"] for o in nb.cells[-1].outputs if "text/html" in o.get("data", {}))
    assert f"Total: {total} / {total}" in html, html[-2000:]
    if assignment == "backprop_ninja":
        output = _outputs(next(c for c in nb.cells if c.get("id") == "try-backprop_ninja"))
        assert "names sampled from your model" in output and "approximate: True" in output


def test_student_notebooks_follow_the_lecture_and_have_no_solutions():
    from autograder.assignments import NAMES
    for assignment in NAMES:
        nb = json.loads((ROOT / "student_template" / "notebooks" / f"{assignment}.ipynb").read_text())
        sources = ["".join(c["source"]) for c in nb["cells"]]
        code = "\n".join(s for c, s in zip(nb["cells"], sources) if c["cell_type"] == "code")
        assert "### BEGIN SOLUTION" not in code and "# file:" not in code and "notebook_grade" not in code
        assert "YOUR CODE HERE" in code or "# TODO" in code
        assert sources[-1].endswith(f"check({assignment!r})")
        assert not any("nbgrader" in c.get("metadata", {}) for c in nb["cells"])


@pytest.mark.parametrize("assignment, total", [("graphs", 12), ("micrograd", 25)])
def test_the_shipped_notebook_is_also_a_submission_for_grade(assignment, total, tmp_path, runner):
    """`autograder grade notebooks/<assignment>.ipynb`: the same notebook, filled in, is graded for credit
    by the submission path (its "try it" and check cells are not definitions and are left out)."""
    from autograder.assignments import exercises
    from autograder.authoring.notebooks import assignment_files
    from autograder.authoring.student_notebooks import student_notebook
    from autograder.core.submission import grade_path
    nb = student_notebook(assignment, assignment_files(ROOT, exercises(assignment)), exercises(assignment),
                          solutions=True)
    path = tmp_path / f"{assignment}.ipynb"
    nbformat.write(nb, str(path))
    result = grade_path(path, None, hidden=False, runner=runner)
    assert result.error is None and result.score == result.max_score == total
    stub = grade_path(ROOT / "student_template" / "notebooks" / f"{assignment}.ipynb", None, hidden=False,
                      runner=runner)
    assert stub.error is None and stub.score == 0 and stub.max_score == total


def test_in_a_notebook_the_report_names_the_cell_not_a_file(runner):
    """Issue 17: the student has cells, not graphs.py: where the code raised is said as `cell [k], line m`."""
    reference = _without_main(ROOT / "reference" / "graphs.py")
    start = reference.index("class MultiplyGate:")
    end = reference.index("class MaxGate:")
    gate = reference[start:end].replace("        dy = self.x * dout\n", "        dy = self.z * dout\n")
    assert "self.z" in gate
    cells = ["", reference, "x = 1\n", gate]  # In[0] is empty in IPython; the fixed gate is run last
    checked = check("graphs", cells=cells, runner=runner)
    line = gate.splitlines().index("        dy = self.z * dout") + 1
    texts = [t for ex in checked.result.exercises for t in [ex.message, ex.where] + [c.message for c in ex.checks]]
    shown = " ".join(t for t in texts if t)
    assert f"cell [3], line {line}" in shown, shown
    assert "graphs.py, line" not in shown and "graphs.py, line" not in repr(checked)


@needs_kernel
def test_the_try_it_cell_of_a_stub_notebook_says_what_to_fill(tmp_path, monkeypatch):
    """Issue 17: the "Try it" cell printed "not implemented yet: " and nothing. It names each function to fill."""
    nb = nbformat.read(ROOT / "student_template" / "notebooks" / "graphs.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "check"]  # the table is tested elsewhere
    _execute(nb, tmp_path, monkeypatch)
    output = _outputs(next(c for c in nb.cells if c.get("id") == "try-graphs"))
    assert "not implemented yet: fill in AddGate.backward" in output
    assert "not implemented yet: fill in l2_of_matvec" in output
    assert "not implemented yet: \n" not in output and "Traceback" not in output


def test_the_try_it_cell_names_the_stub_when_the_main_block_does_not():
    """The cell's own fallback (a stub raising through a main block with no handler of its own) names the
    function whose stub raised."""
    from autograder.authoring.student_notebooks import TRY_IT
    code = TRY_IT.format(path="x.py", body="    def fill_me():\n        raise NotImplementedError()\n    fill_me()")
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<cell>", "exec"), {})
    assert out.getvalue().strip() == "not implemented yet: fill_me: fill it in above, then run this cell again"
