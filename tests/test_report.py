"""The visual report (`autograder report`): its parts for each assignment, escaping, self-containment, the
graph fallback, and a real browser's rendering of the page."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder import report
from autograder.result import CheckResult, ExerciseResult, GradeResult

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)


@pytest.fixture(scope="module")
def reference_page(runner) -> str:
    return report.build_report(ROOT / "reference", runner=runner, train_steps=30, samples=5)


def _self_contained(page: str) -> None:
    assert not re.search(r"<(script|link|iframe)\b", page, re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*(?!["']?(data:|#))""", page, re.I), "a non-inline asset"
    assert "url(http" not in page and "@import" not in page


def test_reference_page_has_every_part_of_every_assignment(reference_page):
    page = reference_page
    _self_contained(page)
    assert "Total: 87 / 87" in page
    from autograder.assignments import all_exercises
    for exercises in all_exercises().values():
        for exercise in exercises:
            assert f'id="{exercise.id}"' in page  # every exercise has its section and table
    # backprop ninja: a heatmap pair per tensor of exercise 1, the loss curve beside the true one, names
    ninja = page[page.index('id="backprop_ninja.manual_backward"'):page.index('id="backprop_ninja.cross_entropy_backward"')]
    assert ninja.count('class="heatmap"') == 26 and ninja.count('src="data:image/png;base64,') == 26
    assert 'alt="heatmap of dlogits"' not in ninja and 'alt="heatmap of logits"' in ninja
    training = page[page.index('id="training"'):]
    assert 'class="loss-curve"' in training and "your curve follows the true one" in training
    names = re.findall(r"<li>([^<]*)</li>", training)
    assert len(names) == 5 and all(re.fullmatch(r"[a-z]*", n) for n in names)
    # graphs: heatmaps for the tensor exercise (f = ||Wx||^2)
    graphs = page[page.index('id="graphs.l2_of_matvec"'):]
    assert 'class="heatmap"' in graphs.split("</section>")[0]
    # micrograd: the expression graphs, no value in red on the reference
    micro = page[page.index('id="micrograd.expressions"'):].split("</section>")[0]
    assert micro.count('<figure class="graph"') == 2 and "<svg" in micro and "data " in micro and "grad " in micro
    assert "wrong-node" not in micro and "0 values with a wrong grad" in micro
    assert "graph-note" in micro  # says how it was drawn (graphviz, or the fallback without `dot`)


def test_wrong_engine_gets_red_nodes_and_its_output_escaped(tmp_path, runner):
    """`=` instead of `+=` in add's backward: the values fed by a fan-out are red; what the engine prints
    (HTML) is shown as text."""
    sub = tmp_path / "sub"
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd", ignore=shutil.ignore_patterns("__pycache__"))
    engine = sub / "micrograd" / "engine.py"
    source = engine.read_text()
    assert source.count("            self.grad += out.grad\n            other.grad += out.grad") == 1
    source = source.replace("            self.grad += out.grad\n            other.grad += out.grad",
                            "            self.grad = out.grad\n            other.grad = out.grad")
    engine.write_text("print('<script>alert(1)</script><b>bold</b>')\n" + source)
    page = report.build_report(sub, ["micrograd"], runner=runner, train_steps=0)
    _self_contained(page)
    micro = page[page.index('id="micrograd.expressions"'):].split("</section>")[0]
    assert "wrong-node" in micro or "#ffb3b3" in micro
    assert re.search(r"[1-9]\d* values? with a wrong grad", micro)
    assert "<b>bold</b>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page


def test_stub_template_page_says_not_implemented(runner):
    page = report.build_report(ROOT / "student_template", ["backprop_ninja"], runner=runner, train_steps=10)
    _self_contained(page)
    assert "Total: 0 / 50" in page and "not_implemented" in page
    training = page[page.index('id="training"'):]
    assert "not implemented yet" in training and "<li>" not in training
    assert 'class="loss-curve"' in training  # the true curve alone, to aim at


def test_every_student_text_is_escaped():
    """Messages, hints, printed output, names, the submission path: nothing from them is markup."""
    evil = "<img src=x onerror=alert(1)>"
    check = CheckResult(name=evil, verdict="wrong", local_verdict=None, maxdiff=1.0, shape=[2], expected_shape=[3],
                        mistake=evil, message=evil, hint=evil, max_points=1.0)
    exercise = ExerciseResult(id="backprop_ninja.train", title=evil, score=0, max_score=1, checks=[check],
                              first_wrong_step=evil, message=evil, output=evil)
    result = GradeResult(submission=evil, score=0, max_score=1, exercises=[exercise], hidden=False, sandbox=evil,
                         error=evil)
    extras = report.Extras(training={"steps": 3, "true_losses": [3.0, 2.9, 2.8], "losses": [3.0, 2.0, 1.0],
                                     "names": [evil], "output": evil, "message": evil})
    page = report.render_html(result, extras)
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "your curve departs from the true one" in page
    assert evil not in report.table_html(result)


def test_fallback_layout_draws_records_ops_and_red_nodes(monkeypatch):
    program = {"leaves": [1.0, -2.0], "ops": [["mul", 0, 1], ["tanh", 2], ["add", 3, 0]]}
    from autograder.assignments.micrograd import torch_program
    _, true = torch_program(program)
    student = {"leaf grads": [true["grads"][0] + 0.5, true["grads"][1]], "node grads": true["grads"][2:-1],
               "output": [0.0, 1.0]}
    nodes, edges = report.program_graph(program, student, true["grads"])
    assert [n.label for n in nodes if n.op] == ["*", "tanh", "+"]
    assert [n.id for n in nodes if not n.op and n.wrong] == ["v0"]  # only x0's grad is off
    svg = report.simple_svg(nodes, edges)
    assert svg.startswith("<svg") and svg.count("<ellipse") == 3 and svg.count("<rect") == 5
    assert svg.count('class="wrong-node"') == 1 and "x0 | data 1.0000 | grad" in svg
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    assert report.graphviz_svg(nodes, edges) is None  # no `dot`: the caller falls back
    if shutil.which("dot"):
        monkeypatch.undo()
        drawn = report.graphviz_svg(nodes, edges)
        assert drawn is not None and drawn.startswith("<svg")


def test_report_command_writes_the_page(tmp_path, runner, monkeypatch):
    from autograder import cli
    monkeypatch.setattr("autograder.runner.Runner", lambda *a, **k: runner)  # share the session's worker
    monkeypatch.setattr(runner, "close", lambda: None)
    out = tmp_path / "out" / "report.html"
    assert cli.main(["report", str(ROOT / "reference"), "-a", "graphs", "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Total: 12 / 12" in page and 'id="training"' not in page
    assert cli.main(["report", str(tmp_path / "nowhere"), "-o", str(out)]) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium): the page is "
                                             "not rendered in a real browser")
def test_a_real_browser_renders_the_page(reference_page, tmp_path):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    page = tmp_path / "report.html"
    page.write_text(reference_page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,2000",
                        page.as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2000, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not blank: text, colours, pictures
    # The title and the first table: dark text in the top-left, many rows of it (the table's lines).
    top = pixels[:700, :600]
    dark_rows = (top.min(axis=2) < 100).any(axis=1)
    assert dark_rows.sum() > 150
    # The page's background is white, as the stylesheet says (the browser applied it).
    assert (pixels[5, 1190] > 240).all()


def test_keep_outputs_keeps_public_cases_only(runner):
    """The pipeline hands the report the student's outputs of public cases, never of hidden ones."""
    from autograder.assignments import exercises
    from autograder.exercise import Seeds
    from autograder.pipeline import grade
    kept: dict = {}
    exs = [ex for ex in exercises("graphs") if ex.id in ("graphs.l2_of_matvec", "graphs.sigmoid_neuron")]
    result = grade(ROOT / "reference", exs, hidden=True, runner=runner, seeds=Seeds(hidden=True, secret="s"),
                   keep_outputs=kept)
    assert any(c.hidden for e in result.exercises for ch in e.checks for c in ch.cases)  # hidden cases ran
    assert set(kept) == {ex.id for ex in exs}
    for entries in kept.values():
        assert entries and all(not case.hidden for case, _, _ in entries)
        assert all(isinstance(outputs, dict) and truth for _, outputs, truth in entries)
    assert result.score == result.max_score
