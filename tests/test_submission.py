"""Submissions as they arrive: directories, zips (hostile ones refused), notebooks; never a crash."""
import json
import os
import stat
import subprocess
import sys
import zipfile

import nbformat
import pytest

from autograder.core import submission as sub
from autograder.core.submission import SubmissionError, grade_path, open_submission

# A registry stand-in: which entry points live in which module file, per assignment.
TABLE = {"micrograd": {"micrograd/engine.py": {"Value", "MLP"}, "micrograd/nn.py": {"MLP"}},
         "graphs": {"graphs.py": {"sigmoid_neuron", "add_gate"}}}


@pytest.fixture
def registry(monkeypatch):
    """The registry as TABLE says (assignments are written in parallel; these tests need none)."""
    import autograder.assignments as assignments
    monkeypatch.setattr(sub, "entry_points", lambda: TABLE)
    monkeypatch.setattr(assignments, "detect", lambda d: [a for a, files in TABLE.items()
                                                          if any((d / f).is_file() for f in files)])


ENGINE = "class Value:\n    def __init__(self, data):\n        self.data = data\n"


def make_zip(path, members, symlink=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    return path


def test_directory_is_graded_from_a_private_copy(tmp_path):
    src = tmp_path / "alice"
    (src / "micrograd").mkdir(parents=True)
    (src / "micrograd" / "engine.py").write_text(ENGINE)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    out = open_submission(src, tmp_path / "work")
    assert out != src and (out / "micrograd" / "engine.py").read_text() == ENGINE
    assert not (out / ".git").exists()


def test_links_in_a_directory_are_refused(tmp_path):
    src = tmp_path / "mallory"
    (src / "micrograd").mkdir(parents=True)
    # A link to someone else's file (e.g. the reference solution) would be graded as the student's own.
    (src / "micrograd" / "engine.py").symlink_to("/etc/hostname")
    with pytest.raises(SubmissionError, match="symbolic link"):
        open_submission(src, tmp_path / "work")


def test_zip_is_extracted_and_a_single_top_folder_unwrapped(tmp_path, registry):
    z = make_zip(tmp_path / "bob.zip", {"bob/micrograd/engine.py": ENGINE, "__MACOSX/bob/._engine.py": "x"})
    out = open_submission(z, tmp_path / "work")
    assert (out / "micrograd" / "engine.py").read_text() == ENGINE
    assert not any("MACOSX" in str(p) for p in (tmp_path / "work").rglob("*"))


@pytest.mark.parametrize("members, symlink, message", [
    ({"../evil.py": "x"}, None, "leaves its folder"),
    ({"a/../../evil.py": "x"}, None, "leaves its folder"),
    ({"/etc/evil.py": "x"}, None, "absolute path"),
    ({"C:\\evil.py": "x"}, None, "absolute path"),
    ({"ok.py": "x"}, ("micrograd/engine.py", "/work/main/reference/micrograd/engine.py"), "symbolic link"),
    ({"bomb.txt": "0" * (8 * 1024 * 1024)}, None, "zip bomb"),
])
def test_hostile_zips_are_refused(tmp_path, members, symlink, message):
    z = make_zip(tmp_path / "h.zip", members, symlink)
    with pytest.raises(SubmissionError, match=message):
        open_submission(z, tmp_path / "work")
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "work" / "evil.py").exists()


def test_zip_limits_count_files_and_real_bytes(tmp_path, monkeypatch):
    z = make_zip(tmp_path / "many.zip", {f"f{i}.py": "x" for i in range(30)})
    monkeypatch.setattr(sub, "MAX_FILES", 20)
    with pytest.raises(SubmissionError, match="more than 20"):
        open_submission(z, tmp_path / "w1")
    monkeypatch.setattr(sub, "MAX_FILES", 2000)
    big = make_zip(tmp_path / "big.zip", {"a.bin": os.urandom(300_000)})
    monkeypatch.setattr(sub, "MAX_BYTES", 200_000)
    with pytest.raises(SubmissionError, match="larger than"):
        open_submission(big, tmp_path / "w2")
    # A header that understates the size: the bytes are counted while decompressing.
    data = bytearray(big.read_bytes())
    with zipfile.ZipFile(big) as zf:
        info = zf.infolist()[0]
    lie = (1000).to_bytes(4, "little")
    true = info.file_size.to_bytes(4, "little")
    assert data.count(true) == 2  # local header and central directory
    data = data.replace(true, lie)
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    with pytest.raises(SubmissionError, match="larger than|cannot extract"):
        open_submission(tmp_path / "liar.zip", tmp_path / "w3")


@pytest.mark.parametrize("name, content, message", [
    ("carol.zip", b"this is not a zip", "not a valid zip"),
    ("carol.pdf", b"%PDF-1.4", "not a directory, a .zip or a notebook"),
    ("carol.ipynb", b"{not json", "not a valid notebook"),
])
def test_malformed_submissions_get_a_clear_error_and_score_zero(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SubmissionError, match=message):
        open_submission(path, tmp_path / "work")
    result = grade_path(path, None, hidden=False)
    assert result.score == 0 and message in result.error and result.exercises == []
    assert result.submission == str(path)


def test_missing_and_misnamed_files_are_named(tmp_path):
    (tmp_path / "dave" / "Micrograd").mkdir(parents=True)
    (tmp_path / "dave" / "Micrograd" / "Engine.py").write_text(ENGINE)
    result = grade_path(tmp_path / "dave", None, hidden=False)
    assert result.score == 0 and "no assignment files found" in result.error and "Engine.py" in result.error
    gone = grade_path(tmp_path / "nobody", None, hidden=False)
    assert gone.score == 0 and "does not exist" in gone.error




def notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Exercise")] + [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(nb)


def test_notebook_definitions_become_the_assignment_modules(tmp_path):
    path = tmp_path / "erin.ipynb"
    path.write_text(notebook([
        "%matplotlib inline\nimport math\nEPS = 1e-8",
        "class Value:\n    def __init__(self, data):\n        self.data = data",
        "v = Value(3.0)\nprint(v.data)\nwhile True: pass  # demo code must not run at import",
        "def broken(:\n    pass",
        "from micrograd.engine import Value\nclass MLP:\n    pass\n\n@staticmethod\ndef helper():\n    return EPS",
        "!pip install torch",
        "from autograder.integrations.nbgrader.tools import notebook_grade\nnotebook_grade('micrograd.ops', points=8)",
    ]))
    out = sub.notebook_to_modules(path, tmp_path / "work", TABLE)
    engine = (out / "micrograd" / "engine.py").read_text()
    assert "from micrograd.engine import *" in (out / "micrograd" / "nn.py").read_text()
    assert not (out / "graphs.py").exists()
    assert "class Value" in engine and "class MLP" in engine and "EPS = 1e-8" in engine and "import math" in engine
    assert "@staticmethod\ndef helper" in engine
    assert "while True" not in engine and "print(" not in engine and "pip" not in engine
    assert "autograder" not in engine.split("\n", 1)[1]  # a course notebook's grade cells are not the student's
    assert "code cells 4" in engine  # the broken cell is named, not silently dropped
    assert "from micrograd.engine import Value" not in engine  # it would import itself
    # One Value class for both files, as when the files are submitted (nn.py imports it from engine.py).
    check = ("import micrograd.engine as e, micrograd.nn as n; "
             "assert n.Value is e.Value and n.MLP is e.MLP and n.helper() == 1e-8")
    subprocess.run([sys.executable, "-c", check], cwd=out, check=True)


def test_notebook_for_another_assignment_or_none(tmp_path):
    path = tmp_path / "frank.ipynb"
    path.write_text(notebook(["def sigmoid_neuron(w, x):\n    return 0"]))
    out = sub.notebook_to_modules(path, tmp_path / "w1", TABLE)
    assert (out / "graphs.py").is_file() and not (out / "micrograd").exists()
    path.write_text(notebook(["def something_else():\n    return 0"]))
    with pytest.raises(SubmissionError, match="defines none of the graded entry points.*sigmoid_neuron"):
        sub.notebook_to_modules(path, tmp_path / "w2", TABLE)


def test_a_folder_holding_one_notebook_stands_for_it(tmp_path, registry):
    # Gradescope puts an uploaded notebook in /autograder/submission/.
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "hw.ipynb").write_text(notebook([ENGINE]))
    out = open_submission(tmp_path / "upload", tmp_path / "work")
    assert (out / "micrograd" / "engine.py").is_file()


def test_write_json_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "r.json"
    sub.write_json_atomic(target, {"score": 1.0})
    assert json.loads(target.read_text()) == {"score": 1.0}
    with pytest.raises(ValueError):
        sub.write_json_atomic(target, {"score": float("nan")})
    assert json.loads(target.read_text()) == {"score": 1.0}


def _graphs_cells(root):
    """reference/graphs.py as notebook cells, one top-level statement each (its __main__ block left out)."""
    import ast as _ast
    source = (root / "reference" / "graphs.py").read_text()
    lines = source.splitlines()
    tree = _ast.parse(source)
    cells = []
    for node in tree.body:
        if isinstance(node, _ast.If):
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        cells.append("\n".join(lines[start - 1:node.end_lineno]))
    return cells


def test_notebook_keeps_every_assignment_the_graded_code_uses(tmp_path, root, runner):
    """The issue's case: `sigmoid = lambda ...` and `DTYPE = torch.float64` were dropped (NameError, 4/12
    lost). Kept now, with the helpers they use; demo code is still left out, and said so."""
    cells = _graphs_cells(root)
    cells = [c.replace("self.s = 1.0 / (1.0 + math.exp(-x))", "self.s = sigmoid(x)")
              .replace("dq = 2.0 * q ", "dq = TWO * q ") for c in cells]
    assert any("sigmoid(x)" in c for c in cells) and any("TWO * q" in c for c in cells)
    cells[1:1] = ["import torch\nDTYPE = torch.float64",
                  "sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))",
                  "TWO = float(torch.tensor(2.0, dtype=DTYPE))",
                  "answers = simple_graph(-2.0, 5.0, -4.0)\nprint(answers)",
                  "while True:  # demo code: must not run at import\n    pass"]
    path = tmp_path / "lambda.ipynb"
    path.write_text(notebook(cells))
    notes = []
    out = sub.notebook_to_modules(path, tmp_path / "work", notes=notes)
    module = (out / "graphs.py").read_text()
    for kept in ("DTYPE = torch.float64", "sigmoid = lambda x", "TWO = float("):
        assert kept in module
    assert "while True" not in module and "print(answers)" not in module
    assert any("answers" in names and "left out" in text for names, text in notes)
    assert "left out (sets answers" in module  # named at the top of the module
    result = grade_path(path, ["graphs"], hidden=False, runner=runner)
    assert result.error is None and result.score == result.max_score == 12, [
        (e.id, e.message) for e in result.exercises if e.score < e.max_score]


def test_notebook_cells_run_out_of_order_or_used_before_defined_are_named(tmp_path, root, runner):
    cells = _graphs_cells(root)
    l2 = next(i for i, c in enumerate(cells) if c.startswith("def l2_of_matvec"))
    buggy = cells[l2].replace("dq = 2.0 * q ", "dq = q ")
    assert buggy != cells[l2]
    # The right version was run last (count 9), the buggy one is the last in the notebook (count 3).
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells] + [nbformat.v4.new_code_cell(buggy)]
    for count, cell in enumerate(nb.cells, 1):
        cell.execution_count = count
    nb.cells[l2].execution_count = 9
    nb.cells[-1].execution_count = 3
    path = tmp_path / "order.ipynb"
    path.write_text(nbformat.writes(nb))
    result = grade_path(path, ["graphs"], hidden=False, runner=runner)
    l2_result = next(e for e in result.exercises if e.id == "graphs.l2_of_matvec")
    assert l2_result.score < l2_result.max_score  # graded as written: the notebook's last definition
    assert "the kernel ran cell" in l2_result.message and "Restart & Run All" in l2_result.message
    assert all("note:" not in e.message for e in result.exercises if e.id != "graphs.l2_of_matvec")

    # A constant used (at import) by a cell above the one that defines it.
    cells = _graphs_cells(root)
    cells = [c.replace("dq = 2.0 * q ", "dq = TWO * q ") for c in cells]
    cells[1:1] = ["TWO = ONE + ONE", "ONE = 1.0"]
    path = tmp_path / "early.ipynb"
    path.write_text(notebook(cells))
    notes = []
    sub.notebook_to_modules(path, tmp_path / "work2", notes=notes)
    assert any(text.startswith("notebook cell 2 uses `ONE` before cell 3 defines it") for _, text in notes), notes
    result = grade_path(path, ["graphs"], hidden=False, runner=runner)
    assert result.score == 0
    assert all("uses `ONE` before cell 3 defines it" in e.message for e in result.exercises), \
        [e.message for e in result.exercises]


def test_the_grade_cell_checksum_is_nbgraders(tmp_path):
    """Our copy of nbgrader's checksum (no nbgrader import when grading) gives nbgrader's value on every cell of
    the course's notebooks, on the same cells edited, and on each kind of nbgrader cell: so an edited grade cell
    is named exactly when nbgrader's own check would see it edited."""
    import copy
    from pathlib import Path

    from nbgrader.utils import compute_checksum
    course = Path(__file__).resolve().parent.parent / "assignments" / "source"
    cells = [c for path in sorted(course.glob("*/*.ipynb")) for c in nbformat.read(str(path), as_version=4).cells
             if "nbgrader" in c.metadata and "grade_id" in c.metadata.nbgrader]
    assert len(cells) > 20
    variants = []
    for cell in cells:
        edited = copy.deepcopy(cell)
        edited.source += "\n# edited"
        variants += [cell, edited]
    kinds = [dict(grade=True, solution=False, points=2), dict(grade=True, solution=True, points=1.5),
             dict(grade=False, solution=True), dict(grade=False, solution=False, locked=True),
             dict(grade=False, solution=False, locked=False), dict(task=True, points=3, grade=False, solution=False)]
    for i, kind in enumerate(kinds):
        for cell_type in ("code", "markdown"):
            variants.append(nbformat.from_dict({"cell_type": cell_type, "source": "x = 1\n", "metadata": {
                "nbgrader": {"grade_id": f"cell-{i}", **kind}}}))
    assert [sub.nbgrader_checksum(c) for c in variants] == [compute_checksum(c) for c in variants]
    assert sub.nbgrader_checksum(variants[1]) != sub.nbgrader_checksum(variants[0])
