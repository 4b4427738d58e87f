"""The nbgrader source notebooks: generated from reference/, up to date, well-formed; and the grade-cell
API in-process (the end-to-end run through the real nbgrader CLI is in test_nbgrader_e2e.py)."""
from __future__ import annotations

import ast
import json

import nbformat
import pytest

from autograder.integrations.nbgrader import course, kernel
from autograder.assignments import NAMES, exercises
from autograder.authoring.notebooks import HEADER_RE, build_notebook, generate, grade_id, notebook_files, split_module
from autograder.authoring.templating import BEGIN, END


@pytest.fixture(scope="module")
def notebooks(root):
    return {name: nbformat.reads(text, as_version=4) for name, text in
            ((path.parts[0], text) for path, text in notebook_files(root).items())}


@pytest.fixture
def shared_runner(runner, monkeypatch):
    """Grade cells share one grading session per kernel; in the tests, on the test session's worker."""
    from autograder.core.session import GradingSession
    monkeypatch.setattr(kernel, "_session", GradingSession(runner=runner).open())
    return runner


def nb_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_generated_notebooks_are_up_to_date(root):
    stale = generate(root, check=True)
    assert stale == [], f"run `make templates`: out of date: {stale}"


def test_a_stale_notebook_is_reported(root, tmp_path):
    (tmp_path / "reference").symlink_to(root / "reference")
    assert generate(tmp_path, check=True), "a course without its notebooks must be reported out of date"
    generate(tmp_path)
    assert generate(tmp_path, check=True) == []
    notebook = next((tmp_path / "assignments" / "source").rglob("*.ipynb"))
    notebook.write_text(notebook.read_text().replace("YOUR CODE HERE", "your code here"))
    assert generate(tmp_path, check=True) == [notebook]


def test_every_assignment_with_exercises_has_a_notebook(notebooks):
    for name in NAMES:
        if exercises(name):
            assert name in notebooks, f"no notebook for {name}"


def test_cells_carry_nbgrader_metadata(notebooks):
    for name, nb in notebooks.items():
        ids = [nb_meta(c)["grade_id"] for c in nb.cells if nb_meta(c)]
        assert len(ids) == len(set(ids)), "grade ids must be unique"
        for cell in nb.cells:
            meta = nb_meta(cell)
            if cell.cell_type == "markdown":
                assert not meta
                continue
            assert meta["schema_version"] == 3
            assert meta["grade_id"] and set(meta["grade_id"]) <= set(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
            if meta["solution"]:
                assert BEGIN in cell.source and END in cell.source and not meta["locked"] and not meta["grade"]
            elif meta["grade"]:
                assert meta["locked"] and "notebook_grade(" in cell.source
            else:
                assert meta["locked"] and BEGIN not in cell.source


def test_one_grade_cell_per_exercise_with_its_points(notebooks):
    for name, nb in notebooks.items():
        grade_cells = {nb_meta(c)["grade_id"]: c for c in nb.cells if nb_meta(c).get("grade")}
        expected = {grade_id(ex.id): ex for ex in exercises(name)}
        assert set(grade_cells) == set(expected)
        for gid, cell in grade_cells.items():
            assert nb_meta(cell)["points"] == float(expected[gid].points)
            assert f"notebook_grade({expected[gid].id!r}, points={float(expected[gid].points)!r})" in cell.source


def test_a_grade_cell_follows_the_cell_defining_its_entry_point(notebooks):
    nb = notebooks["micrograd"]
    order = [nb_meta(c).get("grade_id") for c in nb.cells if c.cell_type == "code"]
    # nn's check needs every nn cell; the engine checks need only the engine.
    assert order.index("micrograd-nn") > order.index("micrograd-nn-part5")
    assert order.index("micrograd-backward") < order.index("micrograd-nn-part1")


def _top_level(source: str) -> list[str]:
    """The module's top-level statements, without its docstring and `__main__` block, in a stable order."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    body = [n for n in body if not (isinstance(n, ast.If) and "__name__" in ast.dump(n.test))]
    return sorted(ast.dump(n) for n in body)


def _definitions(sources) -> list[str]:
    """The top-level functions and classes of some modules, as comparable text."""
    return sorted(ast.dump(n) for source in sources for n in ast.parse(source).body
                  if isinstance(n, (ast.FunctionDef, ast.ClassDef)))


def _converted(nb, tmp_path) -> list[str]:
    """The notebook's code as `autograder grade notebook.ipynb` (and nbgrader's preprocessor) converts it."""
    from autograder.core.submission import notebook_to_modules
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    out = notebook_to_modules(path, tmp_path / "modules")
    return [p.read_text() for p in sorted(out.rglob("*.py"))]


def _module_paths(nb) -> list[str]:
    return sorted({m["path"] for c in nb.cells if (m := HEADER_RE.match(c.source))})


def test_the_notebook_code_is_the_reference_code(root, notebooks, tmp_path):
    """Converted by the one notebook conversion, the notebook defines the reference's functions and
    classes, statement for statement."""
    for name, nb in notebooks.items():
        paths = _module_paths(nb)
        assert paths, name
        assert _definitions(_converted(nb, tmp_path / name)) == \
            _definitions((root / "reference" / p).read_text() for p in paths), name


def test_split_at_jupytext_cell_markers():
    source = '"""Doc."""\nimport math\n\n# %% [markdown]\n# ## The add gate\n\n# %%\ndef f(x):\n' \
             '    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\ndef g(x):\n    return f(x)\n'
    chunks, links = split_module(source, "toy.py", set())
    kinds = [c.kind for c in chunks]
    assert kinds == ["markdown", "code", "markdown", "code"]
    assert chunks[2].source == "## The add gate"
    assert "def f" in chunks[3].source and "def g" in chunks[3].source  # a `# %%` cell stays one cell


def test_sibling_imports_move_to_the_setup_cell(notebooks):
    nb = notebooks["micrograd"]
    setup = next(c for c in nb.cells if "start_notebook(" in c.source)
    links = ast.literal_eval(setup.source.split("links=", 1)[1].rstrip(")"))
    assert any("micrograd.engine" in line for line in links["micrograd/nn.py"])
    assert not any("from micrograd.engine" in c.source for c in nb.cells if HEADER_RE.match(c.source))


def test_build_notebook_rejects_nothing_silently():
    class Ex:
        id, module, entry, points, title, required_files = "toy.f", "toy", "f", 2.0, "", ("toy.py",)
    nb = build_notebook("toy", {"toy.py": "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"},
                        [Ex()])
    kinds = [(c.cell_type, nb_meta(c).get("grade_id")) for c in nb.cells]
    assert kinds[-2:] == [("markdown", None), ("code", "toy-f")]
    assert kinds[-3] == ("code", "toy-part1")


# -- nbgrader generate_assignment's stubs -----------------------------------------------------------------

def test_clear_solutions_honours_stub_markers():
    cls = course._clear_solutions_class()
    pre = cls()
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION stub: dx = None  # TODO\n    dx = 1\n"
                                     "    ### END SOLUTION\n    return dx")
    assert pre._replace_solution_region(cell, "python")
    assert cell.source == "def f():\n    dx = None  # TODO\n    return dx"
    plain = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    assert pre._replace_solution_region(plain, "python")
    assert plain.source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"


# -- the grade-cell API ------------------------------------------------------------------------------------

def _reference_modules(root, nb):
    return {path: (root / "reference" / path).read_text() for path in _module_paths(nb)}


def test_notebook_grade_gives_full_points_to_the_reference(root, notebooks, shared_runner, capfd, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-secret")
    modules = _reference_modules(root, notebooks["graphs"])
    score = kernel.notebook_grade("graphs.sigmoid_neuron", points=3.0, modules=modules, hidden=True)
    out, err = capfd.readouterr()
    assert type(score) is float and score == 3.0
    assert err == ""
    assert "graphs.sigmoid_neuron" in out and "exact" in out and "maxdiff" in out


def test_notebook_grade_partial_credit_and_hint(root, notebooks, shared_runner, capfd):
    modules = _reference_modules(root, notebooks["graphs"])
    # The fan-out mistake in dW only: dx right, dW wrong -> half the points (two equally weighted checks).
    modules["graphs.py"] = modules["graphs.py"].replace("dW = torch.outer(dq, x)", "dW = torch.outer(q, x)")
    score = kernel.notebook_grade("graphs.l2_of_matvec", points=3.0, modules=modules, hidden=False)
    out, err = capfd.readouterr()
    assert score == 1.5 and err == ""
    assert "dW" in out and "wrong" in out  # one verdict column


def test_notebook_grade_is_silent_on_stderr_and_never_raises(shared_runner, capfd):
    noisy = ("import sys, warnings, logging\nwarnings.warn('student warning')\nprint('to stderr', file=sys.stderr)\n"
             "logging.getLogger().error('a log record')\n")
    for exercise_id, modules in (("graphs.AddGate", {"graphs.py": noisy + "class AddGate:\n    pass\n"}),
                                 ("graphs.nope", {"graphs.py": noisy}),
                                 ("nonsense", {})):
        score = kernel.notebook_grade(exercise_id, points=1.0, modules=modules)
        out, err = capfd.readouterr()
        assert score == 0.0 and type(score) is float
        assert err == ""
        assert out.strip()  # says why
    assert kernel.notebook_grade("graphs.AddGate", points="x", modules={}) == 0.0


def test_notebook_grade_never_exceeds_the_cells_points(root, notebooks, shared_runner):
    modules = _reference_modules(root, notebooks["graphs"])
    # Points in the cell lower than the exercise's: scaled, never above the cell's maximum.
    assert kernel.notebook_grade("graphs.simple_graph", points=0.5, modules=modules) == 0.5


def test_an_infinite_loop_costs_one_time_limit(monkeypatch, shared_runner, capfd):
    import time
    monkeypatch.setenv(kernel.TIME_LIMIT_ENV, "1.5")
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-secret")
    looping = "class AddGate:\n    def forward(self, x, y):\n        return x + y\n" \
              "    def backward(self, dout):\n        while True:\n            pass\n"
    started = time.perf_counter()
    score = kernel.notebook_grade("graphs.AddGate", points=1.0, modules={"graphs.py": looping}, hidden=True)
    elapsed = time.perf_counter() - started
    out, _ = capfd.readouterr()
    assert score == 0.0 and "timeout" in out
    cases = len(next(ex for ex in exercises("graphs") if ex.id == "graphs.AddGate").cases(
        kernel_seeds(hidden=True)))
    assert cases > 1 and elapsed < 1.5 * cases  # later cases are not run after the first timeout


def kernel_seeds(hidden):
    from autograder.core.exercise import Seeds
    return Seeds(hidden=hidden, secret="test-secret")


# -- recording the notebook's cells ------------------------------------------------------------------------

def test_the_recorder_keeps_the_latest_run_and_drops_interrupted_cells(tmp_path):
    rec = kernel._Recorder("graphs", {})
    rec.record("# file: graphs.py (part 2 of 8)\nclass AddGate:\n    version = 1")
    rec.finished(False)
    rec.record("print('scratch cell, not part of a module')")
    rec.finished(False)
    rec.record("# file: graphs.py (part 2 of 8)\nclass AddGate:\n    version = 2")   # edited and run again
    rec.finished(False)
    rec.record("# file: graphs.py (part 3 of 8)\nclass MultiplyGate:\n    pass\nwhile True: pass")
    rec.finished(True)                                       # interrupted
    module = (kernel.recorded_modules(rec, tmp_path) / "graphs.py").read_text()
    assert "version = 2" in module and "version = 1" not in module
    assert "while True" not in module and "MultiplyGate" not in module and "scratch" not in module
    assert "graphs.py: part 1, 4, 5, 6, 7, 8 not run yet" in rec.missing()


def test_grade_cells_do_nothing_under_nbgrader_autograde(monkeypatch, capfd):
    """The course's preprocessor grades outside the kernel; the kernel's grade cell scores 0 (so a course
    config without the preprocessor gives no points rather than the kernel's)."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setattr(kernel, "_recorder", None)
    assert kernel.notebook_grade("graphs.AddGate", points=1.0) == 0.0
    out, err = capfd.readouterr()
    assert "graded outside the notebook's kernel" in out and err == ""


def test_write_modules_makes_packages_and_stays_inside(tmp_path):
    kernel.write_modules(tmp_path, {"micrograd/engine.py": "x = 1\n"})
    assert (tmp_path / "micrograd" / "__init__.py").is_file()
    with pytest.raises(ValueError):
        kernel.write_modules(tmp_path, {"../evil.py": ""})


def test_grade_table_lists_students_and_cells():
    table = course.grade_table({"ann": {"graphs-AddGate": 1.0, "graphs-MaxGate": 0.5},
                                        "bob": {"graphs-AddGate": 0.0, "graphs-MaxGate": 1.0}})
    lines = table.splitlines()
    assert lines[0].split() == ["student", "AddGate", "MaxGate", "total"]
    assert lines[1].split() == ["ann", "1", "0.5", "1.5"] and lines[2].split() == ["bob", "0", "1", "1"]
    assert json.dumps(table)


def test_release_code_is_the_student_template(root, notebooks, tmp_path):
    """nbgrader's solution clearing (ours, stub-aware) turns each notebook into the student template's code:
    `dlogprobs = None  # TODO` where the template has it, the default stub elsewhere."""
    import copy
    clear = course._clear_solutions_class()()
    for name, nb in notebooks.items():
        release = copy.deepcopy(nb)
        for cell in release.cells:
            if nb_meta(cell).get("solution"):
                clear._replace_solution_region(cell, "python")
        paths = _module_paths(release)
        assert _definitions(_converted(release, tmp_path / name)) == \
            _definitions((root / "student_template" / p).read_text() for p in paths), name


def test_budget_runner_stops_an_exercise_after_its_first_timeout():
    from autograder.sandbox import RunResult

    class Fake:
        sandbox = "fake"

        def __init__(self, status):
            self.status, self.calls = status, []

        def run_cases(self, submission, module, driver, cases, *, time_limit, **kwargs):
            self.calls.append((len(cases), time_limit))
            return [RunResult(self.status) for _ in cases]

    looping = Fake("timeout")
    results = kernel._BudgetRunner(looping, 2.0).run_cases("s", "m", "d", [{}] * 5, time_limit=20.0,
                                                                    memory_mb=1)
    assert [r.status for r in results] == ["timeout"] * 5
    assert looping.calls == [(1, 2.0)]            # one case run, at the notebook's limit; four skipped
    fine = Fake("ok")
    results = kernel._BudgetRunner(fine, 30.0).run_cases("s", "m", "d", [{}] * 5, time_limit=20.0,
                                                                  memory_mb=1)
    assert [r.status for r in results] == ["ok"] * 5 and fine.calls == [(1, 20.0), (4, 20.0)]


def test_a_bad_setting_is_named_in_the_grade_cell_not_raised(monkeypatch, capfd):
    monkeypatch.setenv(kernel.TIME_LIMIT_ENV, "soon")
    assert kernel.notebook_grade("graphs.AddGate", points=1.0, modules={"graphs.py": ""}) == 0.0
    out, err = capfd.readouterr()
    assert f"{kernel.TIME_LIMIT_ENV}='soon'" in out and err == ""


def test_regrade_outside_the_kernel_grades_each_submitted_notebook_in_a_session(root, runner, tmp_path):
    """The gradebook's cross-check (`nbgrader-autograde --verify`): each submitted notebook graded as
    `autograder grade` grades it, in the session it is given; the source notebook (the solution) scores full."""
    import shutil

    from autograder.core.session import GradingSession
    folder = tmp_path / "course" / "submitted" / "ann" / "graphs"
    folder.mkdir(parents=True)
    shutil.copyfile(root / "assignments" / "source" / "graphs" / "graphs.ipynb", folder / "graphs.ipynb")
    (tmp_path / "course" / "submitted" / "bob" / "graphs").mkdir(parents=True)  # nothing submitted: left out
    with GradingSession(runner=runner, credit=True) as session:
        scores = course.regrade_outside_the_kernel(tmp_path / "course", "graphs", session=session)
    assert scores == {"ann": {grade_id(ex.id): float(ex.points) for ex in exercises("graphs")}}
