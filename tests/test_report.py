"""The visual report (`autograder report`): its parts for each assignment, escaping, self-containment, the
graph fallback, and a real browser's rendering of the page."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder.assignments.backprop_ninja import pictures as ninja_pictures
from autograder.assignments.graphs import pictures as graphs_pictures
from autograder.assignments.micrograd import pictures as micrograd_pictures
from autograder.frontends import report
from autograder.core.result import CheckResult, ExerciseResult, GradeResult

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
    from autograder.assignments import all_exercises
    whole = sum(e.points for exercises in all_exercises().values() for e in exercises)
    assert f"Total: {whole:g} / {whole:g}" in page
    for exercises in all_exercises().values():
        for exercise in exercises:
            assert f'id="{exercise.id}"' in page  # every exercise has its section and table
    # backprop ninja: a heatmap pair per tensor of exercise 1, the loss curve beside the true one, names
    ninja = page[page.index('id="backprop_ninja.manual_backward"'):page.index('id="backprop_ninja.cross_entropy_backward"')]
    assert ninja.count('class="heatmap"') == 26 and ninja.count('src="data:image/png;base64,') == 26
    assert 'alt="heatmap of dlogits"' not in ninja and 'alt="heatmap of logits"' in ninja
    training = page[page.index('id="training"'):]
    assert 'class="loss-curve"' in training and "your curve (blue) follows the true one" in training
    names = re.findall(r"<li>([^<]*)</li>", training)
    # a name is cut at 24 characters (the sampler is bounded), with a mark
    assert len(names) == 5 and all(re.fullmatch(r"[a-z]{0,24}|[a-z]{24}…", n) for n in names)
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
    extras = report.Extras(gathered={"backprop_ninja": {"steps": 3, "true_losses": [3.0, 2.9, 2.8],
                                                        "losses": [3.0, 2.0, 1.0], "names": [evil], "output": evil,
                                                        "message": evil}})
    page = report.render_html(result, extras)
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "your curve (red) departs from the true one" in page
    assert evil not in report.table_html(result)


def test_fallback_layout_draws_records_ops_and_red_nodes(monkeypatch):
    program = {"leaves": [1.0, -2.0], "ops": [["mul", 0, 1], ["tanh", 2], ["add", 3, 0]]}
    from autograder.assignments.micrograd import torch_program
    _, true = torch_program(program)
    student = {"leaf grads": [true["grads"][0] + 0.5, true["grads"][1]], "node grads": true["grads"][2:-1],
               "output": [0.0, 1.0]}
    nodes, edges = micrograd_pictures.program_graph(program, student, true["grads"])
    assert [n.label for n in nodes if n.op] == ["*", "tanh", "+"]
    assert [n.id for n in nodes if not n.op and n.wrong] == ["v0"]  # only x0's grad is off
    svg = micrograd_pictures.simple_svg(nodes, edges)
    assert svg.startswith("<svg") and svg.count("<ellipse") == 3 and svg.count("<rect") == 5
    assert svg.count('class="wrong-node"') == 1 and "x0 | data 1.0000 | grad" in svg
    monkeypatch.setattr(micrograd_pictures.shutil, "which", lambda name: None)
    assert micrograd_pictures.graphviz_svg(nodes, edges) is None  # no `dot`: the caller falls back
    if shutil.which("dot"):
        monkeypatch.undo()
        drawn = micrograd_pictures.graphviz_svg(nodes, edges)
        assert drawn is not None and drawn.startswith("<svg")


def test_report_command_writes_the_page(tmp_path, runner, monkeypatch):
    from autograder.frontends import cli
    monkeypatch.setattr("autograder.sandbox.Runner", lambda *a, **k: runner)  # share the session's worker
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
    from autograder.core.exercise import Seeds
    from autograder.core.pipeline import grade
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


# -- honest pictures (issue 20) -----------------------------------------------------------------------------

def _mistaken(tmp_path: Path) -> Path:
    """A submission with two catalogued mistakes: `=` for `+=` in micrograd's add (fan-out values' grads
    are wrong) and a sign flip in cross-entropy's backward (training diverges)."""
    sub = tmp_path / "mistaken"
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd", ignore=shutil.ignore_patterns("__pycache__"))
    engine = sub / "micrograd" / "engine.py"
    old = "            self.grad += out.grad\n            other.grad += out.grad"
    assert engine.read_text().count(old) == 1
    engine.write_text(engine.read_text().replace(old, "            self.grad = out.grad\n            other.grad = out.grad"))
    ninja = (ROOT / "reference" / "backprop_ninja.py").read_text()
    assert "    dlogits /= n\n" in ninja
    (sub / "backprop_ninja.py").write_text(ninja.replace("    dlogits /= n\n", "    dlogits /= -n\n", 1))
    return sub


@pytest.fixture(scope="module")
def mistaken(runner, tmp_path_factory):
    """(result, extras) of the mistaken submission: the graph exercise, cross-entropy and 120 steps of its
    diverging training, graded for real."""
    from autograder.assignments import exercises
    from autograder.core.pipeline import grade
    sub = _mistaken(tmp_path_factory.mktemp("honest"))
    extras = report.Extras()
    exs = [e for name in ("micrograd", "backprop_ninja") for e in exercises(name)
           if e.id in ("micrograd.expressions", "backprop_ninja.cross_entropy_backward")]
    result = grade(sub, exs, hidden=False, runner=runner, keep_outputs=extras.outputs)
    extras.gathered["backprop_ninja"] = ninja_pictures.train_and_sample(sub, runner, 120, 5)
    return result, extras


def test_a_diverging_train_is_drawn_clipped_and_sampling_returns(mistaken):
    result, extras = mistaken
    info = extras.gathered["backprop_ninja"]
    losses = info["losses"]
    assert len(losses) == 120 and max(x for x in losses if x == x) > 2 * max(info["true_losses"])
    section = ninja_pictures.training_section(info)
    assert "your curve (red) departs" in section and "clip-note" in section and "leaves the plot at step" in section
    # the student's curve is in the picture: the red line's pixels, above the true curve's range
    import base64
    import io
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    png = re.search(r'class="loss-curve"><img alt="loss curve" src="data:image/png;base64,([^"]+)"', section).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")).astype(int)
    red = (abs(pixels[..., 0] - 207) < 40) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    assert red.sum() > 150
    # sampling a diverged model ends: bounded names (or why it stopped), never a hang
    assert "names" in info or "names_message" in info
    assert all(len(n) <= 25 for n in info.get("names", []))


def test_a_drawn_curve_for_a_curve_that_turns_nan():
    true = [3.3 - 0.001 * i for i in range(50)]
    mine = [3.3 + 0.2 * i for i in range(20)] + [float("nan")] * 30
    note = ninja_pictures.clip_note(mine, true)
    assert "leaves the plot at step" in note and "nan from step 20" in note
    assert ninja_pictures.loss_curve_png(mine, true).startswith("data:image/png;base64,")


def _result_with(check: CheckResult, ex_id="backprop_ninja.manual_backward") -> ExerciseResult:
    return ExerciseResult(id=ex_id, title="t", max_score=1, checks=[check])


def _case():
    from autograder.core.exercise import Case
    return Case("public-0", False, {}, label="float32")


def test_heatmaps_are_in_units_of_the_tolerance_with_a_legend():
    import torch
    from autograder.core.result import CaseVerdict
    true = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    close = true + 1e-9           # within tolerance: an all-black error map
    tie = true.clone()
    tie[0, 0] += 1.0              # judged right (e.g. a tie PyTorch splits) though it differs: no error map
    checks = [CheckResult("a", "approx", None, 1e-9, [8, 5], [8, 5], None, "", "", 1,
                          [CaseVerdict("public-0", False, "approx")]),
              CheckResult("b", "exact", None, 0.0, [8, 5], [8, 5], None, "", "", 1,
                          [CaseVerdict("public-0", False, "exact")]),
              CheckResult("s", "approx", None, 0.0, [], [], None, "", "", 1, [CaseVerdict("public-0", False, "approx")])]
    exercise = ExerciseResult(id="graphs.l2_of_matvec", title="t", max_score=3, checks=checks)
    kept = (_case(), {"a": close, "b": tie, "s": torch.tensor(1.0)},
            {"a": true, "b": true, "s": torch.tensor(1.0)})
    html_ = report.heatmaps(exercise, kept)
    assert "black = within tolerance" in html_ and "10<sup>4</sup>" in html_
    assert html_.count('class="heatmap"') == 2         # a and b; never the scalar s
    assert "|yours − true| of b: judged right though it differs from PyTorch" in html_
    # graphs' scalar gates (a row of independent cases, 1xN): no map at all
    from autograder.assignments.graphs import SCALARS
    gate = ExerciseResult(id="graphs.MaxGate", title="t", max_score=1, checks=[checks[0]])
    assert graphs_pictures.exercise_pictures(gate, [(_case(), {"a": close[0]}, {"a": true[0]})], SCALARS) == ""
    assert report.heatmaps(gate, (_case(), {"a": close[0]}, {"a": true[0]})) != ""  # a row, drawn elsewhere


def test_a_leading_size_1_shape_is_a_note_everywhere_not_red():
    from rich.console import Console

    from autograder.frontends.render import to_terminal
    from autograder.core.result import CaseVerdict
    check = CheckResult("bnmeani", "approx", None, 1e-9, [64], [1, 64], None,
                        "shape (64,) accepted for (1, 64): they differ only by leading size-1 dimensions", "", 1,
                        [CaseVerdict("public-0", False, "approx")])
    result = GradeResult("s", exercises=[_result_with(check)])
    console = Console(width=100, record=True, force_terminal=True, color_system="standard", file=io.StringIO())
    to_terminal(result, console)
    plain, styled = console.export_text(clear=False), console.export_text(styles=True)
    assert "(64,) ≈ (1, 64)" in plain and "accepted for (1, 64)" in plain
    assert "\x1b[33m(64,) ≈ (1, 64)" in styled and "\x1b[31m(64,)" not in styled  # yellow, not red
    page = report.render_html(result)
    assert 'class="shape-note"' in page and "(64) ≈ (1, 64)" in page and 'class="wrong">(64)' not in page


def test_a_hint_the_message_repeats_is_shown_once():
    hint = "your loss must go down over the training: it did not"
    check = CheckResult("lowers_loss", "wrong", None, None, None, None, "lowers_loss", f"{hint} (from 3.2 to 3.4)",
                        hint, 2)
    page = report.render_html(GradeResult("s", exercises=[_result_with(check, "backprop_ninja.train")]))
    assert page.count(hint) == 1


def _screenshot(page_html: str, tmp_path: Path, size=(1280, 900)):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    page = tmp_path / f"page-{len(list(tmp_path.iterdir()))}.html"
    page.write_text(page_html, encoding="utf-8")
    shot = page.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={shot}",
                        f"--window-size={size[0]},{size[1]}", page.as_uri()], capture_output=True, timeout=120)
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
    assert shot.is_file(), "Chromium wrote no screenshot"
    return np.asarray(Image.open(shot).convert("RGB")).astype(int), dom


def _near(pixels, rgb, tol=12):
    return int((abs(pixels - rgb).max(axis=2) <= tol).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_a_real_browser_shows_the_wrong_node_the_legend_and_the_curve(mistaken, tmp_path):
    result, extras = mistaken
    style = f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{report.CSS}</style></head><body>"
    # The expression graph, as a student sees it on reaching it: it fits one 1280x900 viewport, with the
    # wrong values (red fill) and the output (blue frame) on screen, no sideways scrolling.
    graphs = micrograd_pictures.expression_graphs(extras.outputs["micrograd.expressions"], limit=1)
    pixels, dom = _screenshot(style + graphs + "</body></html>", tmp_path)
    assert _near(pixels, (255, 179, 179)) > 1000, "no wrong (red) node in the first viewport"
    assert _near(pixels, (9, 105, 218), 30) > 100, "the output (blue frame) is not in the first viewport"
    assert "true " in dom and "wrong-node" in dom
    # The whole page: the heatmaps' legend, the error map of a wrong answer (bright: far beyond tolerance)
    # and the student's diverging curve (red) next to the true one.
    page = report.render_html(result, extras)
    pixels, dom = _screenshot(page, tmp_path, size=(1280, 6000))
    assert "black = within tolerance" in dom and "leaves the plot at step" in dom
    bright = (pixels[..., 0] > 230) & (pixels[..., 1] > 180) & (pixels[..., 2] < 120)   # the map's top colours
    assert bright.sum() > 2000, "the wrong answer's error map is not on screen"
    curve_red = (abs(pixels[..., 0] - 207) < 40) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    assert curve_red.sum() > 500, "the student's loss curve is not on screen"


# -- what the hint says and what the score says agree (issue 20) -------------------------------------------

def _ninja_sub(tmp_path: Path, *edits) -> Path:
    source = (ROOT / "reference" / "backprop_ninja.py").read_text()
    for old, new in edits:
        assert old in source, f"the reference no longer has {old!r}"
        source = source.replace(old, new, 1)
    sub = tmp_path / "ninja"
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text(source)
    return sub


def _graded_ninja(sub, runner, *entries):
    from autograder.assignments import exercises
    from autograder.core.pipeline import grade
    exs = [e for e in exercises("backprop_ninja") if e.entry in entries]
    return {ex.id.split(".")[1]: ex for ex in grade(sub, exs, hidden=False, runner=runner).exercises}


def test_a_helper_returning_zeros_does_not_promise_points(tmp_path, runner):
    """tanh_backward returns zeros: forward_backward's steps after it are right on what it returned but
    earn nothing (zeros cannot tell a right step from a wrong one), and the hint says so."""
    sub = _ninja_sub(tmp_path, ("    dhpreact = (1.0 - h**2) * dh\n    ### END SOLUTION\n    return dhpreact",
                                "    dhpreact = torch.zeros_like(dh)\n    ### END SOLUTION\n    return dhpreact"))
    fb = _graded_ninja(sub, runner, "forward_backward")["forward_backward"]
    for check in fb.checks:
        if check.mistake == "depends_on":
            assert check.points == 0
            assert "keeps its points" not in check.hint and "earns its points once that helper is fixed" in check.hint


def test_a_right_train_keeps_its_points_when_forward_backward_leaves_a_gradient_none(tmp_path, runner):
    sub = _ninja_sub(tmp_path, ("    db1 = dhprebn.sum(0)\n    demb = dembcat.view(emb.shape)\n",
                                "    db1 = None\n    demb = dembcat.view(emb.shape)\n"))
    graded = _graded_ninja(sub, runner, "forward_backward", "train")
    b1 = next(c for c in graded["forward_backward"].checks if c.name == "b1")
    assert b1.verdict == "not_implemented" and b1.points == 0           # costs forward_backward's own check
    train = graded["train"]
    assert train.score == train.max_score and "TypeError" not in train.message


def test_the_given_sample_never_hangs_on_a_diverged_model():
    """The template's given `sample()` (what `python backprop_ninja.py` runs last): names are bounded in
    length where '.' is never picked, and a NaN model samples nothing instead of raising or looping."""
    import importlib.util

    import torch
    spec = importlib.util.spec_from_file_location("given_ninja", ROOT / "student_template" / "backprop_ninja.py")
    given = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(given)
    from autograder.assignments.backprop_ninja.cases import LECTURE_SEED, init_params
    params = init_params(LECTURE_SEED)
    params["b2"][0] = -1e4                       # '.' has probability 0: the lecture's loop never ends
    bnmean, bnvar = torch.zeros(1, 64), torch.ones(1, 64)
    names = given.sample(params, bnmean, bnvar, count=3)
    assert len(names) == 3 and all(len(n) == 24 for n in names)
    params["W2"][:] = float("nan")
    assert given.sample(params, bnmean, bnvar, count=3) == ["", "", ""]
