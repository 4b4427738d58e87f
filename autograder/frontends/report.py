"""The visual report: one self-contained HTML page with the lectures' pictures (DESIGN.md, the student).

`autograder report SUB -o report.html` grades SUB on the public cases and writes:
- the per-tensor table of every exercise (rendered from the one `GradeResult`, never re-scored);
- per-tensor heatmaps of the true gradient and of |yours - true|, in the style of the lecture's
  `plt.imshow(dlogits, cmap='gray')` (public cases only: the grader keeps their outputs);
- what each assignment draws of its own, from its `pictures` module (`autograder/assignments/<name>/
  pictures.py`), through the same three functions for every assignment: `exercise_pictures(exercise,
  kept, tolerance)` under an exercise's table (micrograd's expression graphs as `draw_dot` drew them;
  heatmaps), `gather(submission, runner, settings, status)` run after grading (backprop ninja trains with
  the student's `train` and samples names) and `section(gathered)`, its own part of the page (the loss
  curve and the names).

Everything is inline (images as data: URIs, SVG in the page): no external asset, no script. Every text
that comes from the student's code (messages, printed output, sampled names) is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import importlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder.core.result import GradeResult
from autograder.runtime.verdicts import APPROX, ERROR, EXACT, NOT_IMPLEMENTED, TIMEOUT, WRONG

DEFAULT_TRAIN_STEPS = 1000
DEFAULT_SAMPLES = 10
MAX_HEATMAPS_PER_EXERCISE = 40
MAX_OUTPUT_CHARS = 4000

COLOURS = {EXACT: "#1a7f37", APPROX: "#2da44e", WRONG: "#cf222e", ERROR: "#a40e26", TIMEOUT: "#8250df",
           NOT_IMPLEMENTED: "#6e7781"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #d0d7de; }
.note { color: #57606a; font-size: 0.9em; }
table.checks { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 0.92em; }
table.checks th, table.checks td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
table.checks th { background: #f6f8fa; }
td.num { font-family: ui-monospace, monospace; text-align: right; white-space: nowrap; }
td.verdict { font-weight: 600; white-space: nowrap; }
.hint { color: #57606a; max-width: 640px; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #d0d7de; padding: 6px; background: #fff; }
figcaption { font-size: 0.85em; font-family: ui-monospace, monospace; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; max-width: 1100px; }
ul.names { columns: 2; font-family: ui-monospace, monospace; }
.wrong { color: #cf222e; }
.shape-note { color: #9a6700; }
.graph-box svg { max-width: 100%; height: auto; }
.worked { background: #fff8c5; padding: 6px 8px; max-width: 1100px; white-space: pre-wrap; }
"""


@dataclass
class Extras:
    """What the report draws besides the table, gathered from the public cases."""
    outputs: dict = field(default_factory=dict)   # exercise id -> [(case, outputs, truth)] (public only)
    gathered: dict = field(default_factory=dict)  # assignment -> what its pictures' `gather` returned
    graphviz_note: str = ""


@dataclass(frozen=True)
class Settings:
    """What the report was asked for, as every assignment's `gather` gets it."""
    train_steps: int = DEFAULT_TRAIN_STEPS
    samples: int = DEFAULT_SAMPLES


class HeatmapsOnly:
    """The pictures of an exercise no registered assignment draws for (a test's toy exercise): heatmaps."""

    @staticmethod
    def exercise_pictures(exercise, kept: list, tolerance) -> str:
        return heatmaps(exercise, kept[0], tolerance)

    @staticmethod
    def gather(submission, runner, settings, status) -> None:
        return None

    @staticmethod
    def section(gathered) -> str:
        return ""


def pictures_of(assignment: str):
    """The assignment's `pictures` module (or heatmaps only, for an assignment nobody registered)."""
    from autograder.assignments import registered
    package = registered().get(assignment)
    return importlib.import_module(f"{package}.pictures") if package else HeatmapsOnly


def _declared_tolerance(exercise_id: str):
    """The exercise's own tolerance, as its judge used it (the dtype defaults for an unknown exercise)."""
    from autograder.assignments import exercises, registered
    from autograder.core.exercise import DTYPE_DEFAULT
    assignment = exercise_id.split(".", 1)[0]
    if assignment not in registered():
        return DTYPE_DEFAULT
    return next((ex.tolerance for ex in exercises(assignment) if ex.id == exercise_id), DTYPE_DEFAULT)


# -- entry points -----------------------------------------------------------------------------------------

def build_report(submission: Path | str, assignments: list[str] | None = None, *, runner=None,
                 train_steps: int = DEFAULT_TRAIN_STEPS, samples: int = DEFAULT_SAMPLES, status=None,
                 on_exercise=None, config=None) -> str:
    """Grade `submission` on the public cases and return the report page. `status(text)` and
    `on_exercise(result)`: live progress, as `check` shows it."""
    from autograder.assignments import detect, exercises
    from autograder.core.session import GradingSession
    status = status or (lambda text: None)
    submission = Path(submission)
    names = assignments or detect(submission)
    exs = [ex for name in names for ex in exercises(name)]
    extras = Extras()
    # `runner`, when given, is borrowed (left open); else the session builds one and closes it.
    with GradingSession(config, runner=runner, cache_truths=True) as session:
        result = session.grade(submission, exs, hidden=False, keep_outputs=extras.outputs,
                               on_start=lambda ex: status(f"grading {ex.id}…"), on_exercise=on_exercise)
        settings = Settings(train_steps=train_steps, samples=samples)
        for name in names:
            gathered = pictures_of(name).gather(submission, session.runner, settings, status)
            if gathered is not None:
                extras.gathered[name] = gathered
    return render_html(result, extras)


def render_html(result: GradeResult, extras: Extras | None = None) -> str:
    extras = extras or Extras()
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>backprop-lab report: {_e(result.submission)}</title><style>{CSS}</style></head><body>",
             f"<h1>backprop-lab report</h1><p class=\"note\">{_e(result.submission)}: public cases only; "
             f"isolation: {_e(result.sandbox)}</p>",
             f"<p id=\"total\"><b>Total: {_points(result.score)} / {_points(result.max_score)}</b></p>"]
    if result.error:
        parts.append(f"<p class=\"wrong\">{_e(result.error)}</p>")
    for exercise in result.exercises:
        parts.append(exercise_section(exercise, extras))
    for name, gathered in extras.gathered.items():
        parts.append(pictures_of(name).section(gathered))
    parts.append("</body></html>\n")
    return "".join(parts)


def table_html(result: GradeResult) -> str:
    """The per-tensor tables alone (the notebook's `check()` shows this)."""
    return (f"<div class=\"backprop-lab\"><style>{CSS.replace('body', '.backprop-lab')}</style>"
            + "".join(_exercise_table(ex) + _printed(ex) for ex in result.exercises)
            + f"<p><b>Total: {_points(result.score)} / {_points(result.max_score)}</b></p></div>")


# -- the table ----------------------------------------------------------------------------------------------

def _e(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _points(x) -> str:
    from autograder.frontends.formats import fmt  # the one rounding of exact points, as every front end shows them
    return fmt(x)


def _maxdiff(x) -> str:
    if x is None:
        return ""
    if isinstance(x, str) or not math.isfinite(x):
        return str(x)
    return "0" if x == 0 else f"{x:.2e}"


def _shape(shape, expected) -> str:
    def fmt(s) -> str:
        return "(" + ", ".join(str(d) for d in s) + ")"
    if shape is None and expected is None:
        return ""
    if shape is None or expected is None or list(shape) == list(expected):
        return _e(fmt(shape if shape is not None else expected))
    from autograder.frontends.render import leading_ones_only
    if leading_ones_only(shape, expected):  # accepted, as in the terminal: a note, not an error
        return (f"<span class=\"shape-note\" title=\"accepted: they differ only by leading size-1 dimensions\">"
                f"{_e(fmt(shape))} ≈ {_e(fmt(expected))}</span>")
    return f"<span class=\"wrong\">{_e(fmt(shape))} ≠ {_e(fmt(expected))}</span>"


def _verdict(verdict: str | None) -> str:
    if verdict is None:
        return "<td class=\"verdict\"></td>"
    return f"<td class=\"verdict\" style=\"color:{COLOURS.get(verdict, '#1f2328')}\">{_e(verdict)}</td>"


def _exercise_table(exercise, heading: bool = True) -> str:
    rows = []
    for check in exercise.checks:
        hint = " ".join(x for x in (f"[{check.mistake}]" if check.mistake else "", check.hint or "") if x)
        # the message often repeats the hint (the judge's own words): said once
        message = "" if check.hint and check.hint.strip() in (check.message or "") else (check.message or "")
        note = " — ".join(x for x in (hint, message) if x)
        rows.append(f"<tr>{'<td>' + _e(check.name) + '</td>'}{_verdict(check.verdict)}{_verdict(check.local_verdict)}"
                    f"<td class=\"num\">{_maxdiff(check.maxdiff)}</td><td class=\"num\">"
                    f"{_shape(check.shape, check.expected_shape)}</td><td class=\"num\">{_points(check.points)} / "
                    f"{_points(check.max_points)}</td><td class=\"hint\">{_e(note)}</td></tr>")
    first = (f"<p>First wrong step: <b class=\"wrong\">{_e(exercise.first_wrong_step)}</b></p>"
             if exercise.first_wrong_step else "")
    message = f"<p class=\"wrong\">{_e(exercise.message)}</p>" if exercise.message else ""
    title = (f"<h3>{_e(exercise.id)}: {_e(exercise.title)} ({_points(exercise.score)} / "
             f"{_points(exercise.max_score)})</h3>") if heading else ""
    return (f"{title}{message}{first}"
            "<table class=\"checks\"><tr><th>check</th><th>verdict</th><th>local</th><th>maxdiff</th>"
            "<th>shape</th><th>points</th><th>hint</th></tr>" + "".join(rows) + "</table>")


def _printed(exercise) -> str:
    """What the student's code printed on the public cases (the last MAX_OUTPUT_CHARS of it), as text."""
    if not exercise.output:
        return ""
    text = exercise.output[-MAX_OUTPUT_CHARS:]
    cut = len(exercise.output) - len(text)
    return (f"<p class=\"note\">What your code printed (public cases{f'; {cut} characters left out' if cut else ''}):</p>"
            f"<pre class=\"student-output\">{_e(text)}</pre>")


def _worked_html(exercise, kept: list) -> str:
    """The worked element under a wrong gradient, as in the terminal (worked.py)."""
    from autograder.frontends.worked import worked_element
    worked = worked_element(exercise, kept) if kept else None
    return f"<pre class=\"worked\">{_e(chr(10).join(worked.lines()))}</pre>" if worked else ""


def exercise_section(exercise, extras: Extras) -> str:
    parts = [f"<section class=\"exercise\" id=\"{_e(exercise.id)}\"><h2>{_e(exercise.id)}: {_e(exercise.title)} "
             f"({_points(exercise.score)} / {_points(exercise.max_score)})</h2>", _exercise_table(exercise, heading=False)]
    parts.append(_printed(exercise))
    kept = extras.outputs.get(exercise.id) or []
    parts.append(_worked_html(exercise, kept))
    if kept:
        parts.append(pictures_of(exercise.id.split(".", 1)[0]).exercise_pictures(
            exercise, kept, _declared_tolerance(exercise.id)))
    parts.append("</section>")
    return "".join(parts)


# -- heatmaps ---------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _as_2d(t):
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], -1)


ERROR_DECADES = 4      # the error map's colours run from 1x to 10^4x the tolerance (above: the top colour)


def _tolerance(case, name: str, exp, tolerance, scale_of=None):
    """Per element, the tolerance the comparison allows: atol * scale + rtol * |true| (the exercise's
    `tolerance` for the truth's dtype), with the assignment's scale where it has one (`scale_of`)."""
    tol = tolerance.for_dtype(exp.dtype if exp.is_floating_point() else None)
    scale = scale_of(case, name, exp) if scale_of else None
    if scale is None:
        scale = float(exp.abs().max()) if exp.numel() else 1.0
    return tol.atol * (scale or 1.0) + tol.rtol * exp.abs()


def _informative(t, matrices_only: bool) -> bool:
    """A map says something only where there is a picture: never for a scalar, and where `matrices_only`
    (a row of independent scalar cases, 1xN) only for a real matrix."""
    if t.numel() < 2:
        return False
    return not matrices_only or sum(1 for d in t.shape if d > 1) >= 2


def heatmaps(exercise, kept, tolerance=None, *, scale_of=None, matrices_only: bool = False) -> str:
    """For every tensor of the first public case: the true gradient, and |yours - true| in units of the
    exercise's tolerance (black: within it; one fixed colour scale for every map). No map where it carries no
    information: a scalar or a vector (`matrices_only`: a batch of scalar gates), and no error map where the
    answer was judged right but differs from PyTorch's (a tie, which PyTorch splits 0.5/0.5 by convention; a
    correct step fed a wrong upstream). `scale_of(case, name, true)`: the assignment's scale of a
    gradient's rounding (None: the largest |true|)."""
    from autograder.core.exercise import DTYPE_DEFAULT
    tolerance = tolerance or DTYPE_DEFAULT
    from autograder.core.compare import as_tensor
    from autograder.core.result import PASSED
    case, outputs, truth = kept
    figures, skipped = [], []
    for check in exercise.checks[:MAX_HEATMAPS_PER_EXERCISE]:
        expected = truth.get(check.name)
        exp = as_tensor(expected) if expected is not None else None
        if exp is None or not exp.is_floating_point() or not _informative(exp, matrices_only):
            continue
        got = as_tensor(outputs.get(check.name)) if isinstance(outputs, dict) else None
        if got is None:
            skipped.append(f"{check.name}: nothing returned")
            continue
        if got.numel() != exp.numel() or (tuple(got.shape) != tuple(exp.shape) and
                                          tuple(s for s in got.shape if s != 1) != tuple(s for s in exp.shape if s != 1)):
            skipped.append(f"{check.name}: shape {tuple(got.shape)} instead of {tuple(exp.shape)}")
            continue
        got = got.double().reshape(exp.shape)
        ratio = (got - exp.double()).abs() / _tolerance(case, check.name, exp, tolerance, scale_of).double().clamp_min(1e-300)
        show_error = True
        if check.passed and bool((ratio > 1).any()):
            show_error = False
            skipped.append(f"|yours − true| of {check.name}: judged right "
                           + ("given your own upstream gradients" if check.status != PASSED else
                              "though it differs from PyTorch's where the rule allows a choice (e.g. a tie)"))
        figures.append(_heatmap_figure(check.name, _as_2d(exp.double()), _as_2d(ratio) if show_error else None,
                                       check.verdict))
    if not figures and not skipped:
        return ""
    label = f" ({_e(case.label)})" if case.label else ""
    note = ("<p class=\"note\">Not drawn: " + _e("; ".join(skipped)) + "</p>") if skipped else ""
    legend = ("<p class=\"note legend\"><b>Legend</b>: left, the true gradient (grey: black is its most negative "
              "value, white its most positive); right, |yours − true| in units of the tolerance: "
              "<b>black = within tolerance</b> (a right answer is all black), then from 1× (dark purple) to "
              f"10<sup>{ERROR_DECADES}</sup>× and beyond (pale yellow), the same scale on every map.</p>")
    return (f"<h3>Heatmaps: the true gradient and |yours − true|, public case {_e(case.id)}{label}</h3>{legend}{note}"
            f"<div class=\"figs heatmaps\">{''.join(figures)}</div>")


def _heatmap_figure(name: str, exp, ratio, verdict: str) -> str:
    """`ratio`: |yours - true| / tolerance (None: no error map)."""
    import torch
    from matplotlib.colors import LogNorm
    plt = _pyplot()
    rows, cols = exp.shape
    panels = 2 if ratio is not None else 1
    # wide enough that the two titles never overlap, even for a (32, 1) column
    width = max(2.6 * panels, min(7.0, 2.2 + 4.0 * min(1.0, cols / 30)))
    height = min(3.2, 1.2 + 2.0 * min(1.0, rows / 30))
    fig, axes = plt.subplots(1, panels, figsize=(width, height), squeeze=False)
    axes = axes[0]
    axes[0].imshow(exp.numpy(), cmap="gray", aspect="auto", interpolation="nearest")
    axes[0].set_title(f"true d{name}", fontsize=8)
    if ratio is not None:
        finite = torch.where(torch.isfinite(ratio), ratio, torch.full_like(ratio, 10.0 ** ERROR_DECADES))
        cmap = plt.get_cmap("inferno").with_extremes(under="black")
        # within tolerance (ratio <= 1) is below the scale: black
        shown = finite.clamp(max=10.0 ** ERROR_DECADES).masked_fill(finite <= 1, 0.5)
        image = axes[1].imshow(shown.numpy(), cmap=cmap, aspect="auto", interpolation="nearest",
                               norm=LogNorm(vmin=1.0, vmax=10.0 ** ERROR_DECADES, clip=False))
        worst = float(finite.max())
        axes[1].set_title("|yours−true| / tol" + (": all within" if worst <= 1 else ""), fontsize=8)
        bar = fig.colorbar(image, ax=axes[1], fraction=0.08, pad=0.04, extend="both")
        bar.ax.tick_params(labelsize=6)
        bar.set_ticks([10.0 ** k for k in range(ERROR_DECADES + 1)])
    for ax in axes:
        ax.tick_params(labelsize=6)
        if cols == 1:
            ax.set_xticks([0])  # one column: no fractional ticks
    fig.tight_layout()
    colour = COLOURS.get(verdict, "#1f2328")
    return (f"<figure class=\"heatmap\"><img alt=\"heatmap of {_e(name)}\" src=\"{_png(fig)}\">"
            f"<figcaption>{_e(name)}: <span style=\"color:{colour}\">{_e(verdict)}</span></figcaption></figure>")


# -- the command -------------------------------------------------------------------------------------------

def cmd_report(args) -> int:
    # as `check`: student_template/ in this repository, the current directory in a student's own
    submission = Path(args.dir or ("student_template" if Path("student_template").is_dir() else "."))
    if not submission.is_dir():
        print(f"No such directory: {submission}")
        return 2
    from autograder.assignments import detect
    if not (args.assignment or detect(submission)):
        print(f"Nothing to grade in {submission}: no assignment files found")
        return 2
    from rich.console import Console
    from rich.text import Text
    from autograder.frontends.cli import _progress
    console = Console(stderr=True)

    def graded(ex) -> None:  # one line per exercise as it is graded (the page comes at the end)
        console.print(Text(f"graded {ex.id}: {float(ex.score):g}/{float(ex.max_score):g}"))
    with _progress(console) as status:
        page = build_report(submission, args.assignment, train_steps=args.train_steps, samples=args.samples,
                            config=getattr(args, "config", None),
                            status=status, on_exercise=graded)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out} ({len(page) // 1024} KiB): open it in a browser")
    return 0


def register(subparsers) -> None:
    from autograder.assignments import NAMES
    p = subparsers.add_parser("report", help="write a visual HTML report (heatmaps, graphs, loss curve, names)")
    p.add_argument("dir", nargs="?", help="the submission directory (default: student_template/ if present, else .)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("-a", "--assignment", action="append", choices=NAMES, help="only this assignment (repeatable)")
    p.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS,
                   help=f"steps of training with your backward (default {DEFAULT_TRAIN_STEPS}; 0: skip)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="names to sample from the trained model")
    p.set_defaults(func=cmd_report)
