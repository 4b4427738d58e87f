"""The visual report: one self-contained HTML page with the lectures' pictures (DESIGN.md, the student).

`autograder report SUB -o report.html` grades SUB on the public cases and writes:
- the per-tensor table of every exercise (rendered from the one `GradeResult`, never re-scored);
- per-tensor heatmaps of the true gradient and of |yours - true|, in the style of the lecture's
  `plt.imshow(dlogits, cmap='gray')` (public cases only: the grader keeps their outputs);
- micrograd's expression graphs as `draw_dot` drew them (left to right, a record "data | grad" per
  value, an oval per operation), the values whose grad is wrong in red; without graphviz's `dot`
  binary, the same picture laid out here as plain SVG (the page says so);
- backprop ninja's loss curve of the student's `train` next to the true one (autograd's gradients on
  the same batches), and names sampled from the student's trained model, in the student's process.

Everything is inline (images as data: URIs, SVG in the page): no external asset, no script. Every text
that comes from the student's code (messages, printed output, sampled names) is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import shutil
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
    training: dict | None = None                  # {"losses", "true_losses", "names", "message"}
    graphviz_note: str = ""


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
        if "backprop_ninja" in names and train_steps > 0:
            status(f"training with your backward ({train_steps} steps) and sampling names…")
            extras.training = train_and_sample(submission, session.runner, train_steps, samples)
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
    if extras.training is not None:
        parts.append(training_section(extras.training))
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
        if exercise.id == "micrograd.expressions":
            parts.append(expression_graphs(kept, extras))
        elif exercise.id.split(".")[0] != "micrograd" and exercise.id != "backprop_ninja.train":
            parts.append(heatmaps(exercise, kept[0]))
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


def _tolerance(case, name: str, exp):
    """Per element, the tolerance the comparison allows: atol * scale + rtol * |true| (compare.Tolerance),
    with exercise 1's scale (the size of the summands a gradient is made of) where the case has it."""
    from autograder.core.compare import tolerance_for
    tol = tolerance_for(exp.dtype if exp.is_floating_point() else None)
    scale = float(exp.abs().max()) if exp.numel() else 1.0
    fwd = (case.info or {}).get("forward") if isinstance(getattr(case, "info", None), dict) else None
    if fwd is not None and name in getattr(fwd, "grads", {}):
        from autograder.assignments.backprop_ninja.model import global_scale
        scale = global_scale(fwd, name)
    return tol.atol * (scale or 1.0) + tol.rtol * exp.abs()


def _informative(exercise_id: str, t) -> bool:
    """A map says something only where there is a picture: never for a scalar, and for the graphs
    assignment's gates (a row of independent scalar cases, 1xN) only for a real matrix."""
    if t.numel() < 2:
        return False
    return not exercise_id.startswith("graphs.") or sum(1 for d in t.shape if d > 1) >= 2


def heatmaps(exercise, kept) -> str:
    """For every tensor of the first public case: the true gradient, and |yours - true| in units of the
    tolerance (black: within it; one fixed colour scale for every map). No map where it carries no
    information: a scalar or a vector (a batch of scalar gates), and no error map where the answer was
    judged right but differs from PyTorch's (a tie, which PyTorch splits 0.5/0.5 by convention; a correct
    step fed a wrong upstream)."""
    from autograder.core.compare import as_tensor
    from autograder.core.result import PASSED
    case, outputs, truth = kept
    figures, skipped = [], []
    for check in exercise.checks[:MAX_HEATMAPS_PER_EXERCISE]:
        expected = truth.get(check.name)
        exp = as_tensor(expected) if expected is not None else None
        if exp is None or not exp.is_floating_point() or not _informative(exercise.id, exp):
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
        ratio = (got - exp.double()).abs() / _tolerance(case, check.name, exp).double().clamp_min(1e-300)
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


# -- micrograd's expression graphs ----------------------------------------------------------------------

OP_LABELS = {"add": "+", "mul": "*", "pow": "**{c}", "exp": "exp", "log": "log", "tanh": "tanh", "relu": "ReLU",
             "sigmoid": "sigmoid", "neg": "neg", "sub": "-", "div": "/", "addc": "+ {c}", "radd": "{c} +",
             "rsub": "{c} -", "rmul": "{c} *", "rdiv": "{c} /"}


@dataclass
class GraphNode:
    id: str
    label: str          # "a3" or the operation
    data: float | None = None
    grad: float | None = None
    true_grad: float | None = None
    op: bool = False
    wrong: bool = False


def program_graph(program: dict, got: dict, truth_grads: list) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """The nodes and edges of a micrograd program (values and operations), with the student's grads."""
    from autograder.assignments.micrograd import torch_program
    from autograder.core.compare import as_tensor
    from autograder.assignments.micrograd.student_side import OPS
    nodes_t, _ = torch_program(program)
    n_leaves = len(program["leaves"])
    leaf_grads = as_tensor(got.get("leaf grads"))
    node_grads = as_tensor(got.get("node grads"))
    output = as_tensor(got.get("output"))
    student = [None] * len(nodes_t)
    if leaf_grads is not None and leaf_grads.numel() == n_leaves:
        student[:n_leaves] = leaf_grads.tolist()
    if node_grads is not None and node_grads.numel() == len(nodes_t) - n_leaves - 1:
        student[n_leaves:-1] = node_grads.tolist()
    if output is not None and output.numel() == 2:
        student[-1] = output.tolist()[1]
    nodes, edges = [], []
    for i, t in enumerate(nodes_t):
        true = truth_grads[i]
        mine = student[i]
        wrong = mine is None or not math.isfinite(mine) or abs(mine - true) > 1e-6 * (1 + abs(true))
        nodes.append(GraphNode(f"v{i}", f"x{i}" if i < n_leaves else f"v{i}", float(t.detach()), mine, true,
                               wrong=wrong))
    for k, (name, *args) in enumerate(program["ops"]):
        result = n_leaves + k
        kinds = OPS[name][0]
        constant = next((a for kind, a in zip(kinds, args) if kind == "c"), "")
        op_id = f"op{result}"
        nodes.append(GraphNode(op_id, OP_LABELS.get(name, name).format(c=constant), op=True))
        for kind, a in zip(kinds, args):
            if kind == "n":
                edges.append((f"v{a}", op_id))
        edges.append((op_id, f"v{result}"))
    return nodes, edges


def _record(node: GraphNode) -> str:
    """draw_dot's "label | data | grad"; a wrong grad shows the true one beside it."""
    grad = "?" if node.grad is None else f"{node.grad:.4f}"
    true = f" (true {node.true_grad:.4f})" if node.wrong and node.true_grad is not None else ""
    return f"{node.label} | data {node.data:.4f} | grad {grad}{true}"


PAGE_WIDTH = 1100      # px: a graph wider than this is cut down to what explains the wrong grads


def focus(nodes: list[GraphNode], edges, output_id: str) -> tuple[list[GraphNode], list, int]:
    """The part of a graph that explains its wrong grads: the wrong values, the output, every value and
    operation on a path between them (the gradient flows along those), and the inputs of those operations.
    Returns (nodes, edges, how many values were left out)."""
    wrong = {n.id for n in nodes if n.wrong and not n.op}
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)

    def closure(start, step):
        seen, stack = set(start), list(start)
        while stack:
            for nxt in step.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen
    downstream = closure(wrong, succ)
    upstream_of_output = closure({output_id}, pred)
    keep = (downstream & upstream_of_output) | wrong | {output_id}
    keep |= {p for k in list(keep) for p in pred.get(k, ()) if k.startswith("op")}   # an operation's inputs
    kept = [n for n in nodes if n.id in keep]
    left_out = sum(1 for n in nodes if not n.op and n.id not in keep)
    return kept, [(a, b) for a, b in edges if a in keep and b in keep], left_out


def graphviz_svg(nodes: list[GraphNode], edges) -> str | None:
    """draw_dot's picture through graphviz; None where the `dot` binary is absent."""
    if shutil.which("dot") is None:
        return None
    import graphviz
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": "LR"})
    for node in nodes:
        if node.op:
            dot.node(node.id, label=node.label)
        else:
            colour = {"style": "filled", "fillcolor": "#ffb3b3", "color": "#cf222e"} if node.wrong else {}
            dot.node(node.id, label="{ " + _record(node) + " }", shape="record", **colour)
    for a, b in edges:
        dot.edge(a, b)
    try:
        svg = dot.pipe(format="svg").decode("utf-8")
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError):
        return None
    return svg[svg.find("<svg"):]


def simple_svg(nodes: list[GraphNode], edges) -> str:
    """The same picture without graphviz: columns by depth from the leaves (left to right), boxes for the
    values ("label | data | grad"), ovals for the operations, wrong values in red."""
    by_id = {n.id: n for n in nodes}
    inputs: dict[str, list[str]] = {}
    for a, b in edges:
        inputs.setdefault(b, []).append(a)
    depth: dict[str, int] = {}

    def depth_of(node_id: str) -> int:
        stack = [node_id]
        while stack:
            current = stack[-1]
            pending = [p for p in inputs.get(current, []) if p not in depth]
            if pending:
                stack.extend(pending)
                continue
            depth[current] = 1 + max((depth[p] for p in inputs.get(current, [])), default=-1)
            stack.pop()
        return depth[node_id]
    columns: dict[int, list[GraphNode]] = {}
    for node in nodes:
        columns.setdefault(depth_of(node.id), []).append(node)
    output = next((n.id for n in reversed(nodes) if not n.op), None)
    box_w = max([250] + [7 * len(_record(n)) + 14 for n in nodes if not n.op])
    box_h, op_w, gap_x, gap_y = 26, 60, 40, 14
    col_x, x = {}, 10
    for d in sorted(columns):
        col_x[d] = x
        x += (op_w if all(n.op for n in columns[d]) else box_w) + gap_x
    pos = {}
    height = 0
    for d, col in columns.items():
        for i, node in enumerate(col):
            w = op_w if node.op else box_w
            pos[node.id] = (col_x[d], 10 + i * (box_h + gap_y), w)
            height = max(height, 10 + (i + 1) * (box_h + gap_y))
    # scaled down to the page's width where wider (never up): the whole graph in view
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{x}\" height=\"{height}\" "
           f"style=\"max-width:100%;height:auto\" "
           f"viewBox=\"0 0 {x} {height}\" font-family=\"monospace\" font-size=\"11\">",
           "<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"3\" orient=\"auto\">"
           "<path d=\"M0,0 L7,3 L0,6 z\" fill=\"#555\"/></marker></defs>"]
    for a, b in edges:
        ax, ay, aw = pos[a]
        bx, by, _ = pos[b]
        out.append(f"<line x1=\"{ax + aw}\" y1=\"{ay + box_h / 2}\" x2=\"{bx}\" y2=\"{by + box_h / 2}\" "
                   "stroke=\"#555\" marker-end=\"url(#arrow)\"/>")
    for node_id, (nx, ny, w) in pos.items():
        node = by_id[node_id]
        if node.op:
            out.append(f"<ellipse cx=\"{nx + w / 2}\" cy=\"{ny + box_h / 2}\" rx=\"{w / 2}\" ry=\"{box_h / 2}\" "
                       f"fill=\"#fff\" stroke=\"#333\"/><text x=\"{nx + w / 2}\" y=\"{ny + box_h / 2 + 4}\" "
                       f"text-anchor=\"middle\">{_e(node.label)}</text>")
        else:
            fill, stroke = ("#ffb3b3", "#cf222e") if node.wrong else ("#fff", "#333")
            if node.id == output:
                stroke = "#0969da"  # the output: a blue frame, thick
            kind = "wrong-node" if node.wrong else "node"
            out.append(f"<g class=\"{kind}{' output-node' if node.id == output else ''}\"><rect x=\"{nx}\" "
                       f"y=\"{ny}\" width=\"{w}\" height=\"{box_h}\" fill=\"{fill}\" stroke=\"{stroke}\" "
                       f"stroke-width=\"{3 if node.id == output else 1}\"/>"
                       f"<text x=\"{nx + 6}\" y=\"{ny + box_h / 2 + 4}\">{_e(_record(node))}</text>"
                       + (f"<title>true grad {node.true_grad:.6g}</title>" if node.true_grad is not None else "")
                       + "</g>")
    out.append("</svg>")
    return "".join(out)


def _layout_width(nodes: list[GraphNode], edges) -> int:
    svg = simple_svg(nodes, edges)
    head = svg[:200]
    try:
        return int(head.split('width="', 1)[1].split('"', 1)[0])
    except (IndexError, ValueError):
        return 0


def compact_svg(nodes: list[GraphNode], edges) -> str:
    """A graph too wide for the page, drawn to fit it: top to bottom, the output first (the backward pass
    starts there) and the leaves last, each operation folded into the value it makes ("v5 = v3 * v4 |
    data | grad"), so a row holds the values of one depth and the page's width is enough."""
    by_id = {n.id: n for n in nodes}
    preds: dict[str, list[str]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    made_by = {b: a for a, b in edges if by_id[a].op}               # value -> the operation that made it
    value_inputs = {v: preds.get(op, []) for v, op in made_by.items()}
    values = [n for n in nodes if not n.op]
    output = values[-1].id if values else None
    consumers: dict[str, list[str]] = {}
    for v, ins in value_inputs.items():
        for i in ins:
            consumers.setdefault(i, []).append(v)
    level: dict[str, int] = {}
    for node in reversed(values):  # creation order: every consumer comes after its inputs
        level[node.id] = 1 + max((level[c] for c in consumers.get(node.id, []) if c in level), default=-1)

    def label(node: GraphNode) -> str:
        op = made_by.get(node.id)
        if op is None:
            return _record(node)
        ins = [by_id[i].label for i in value_inputs[node.id]]
        text = by_id[op].label
        if len(ins) == 2:
            formula = f" {text} ".join(ins)
        elif len(ins) == 1 and text[-1] in "+-*/":     # a constant first: "1.5 * v3"
            formula = f"{text} {ins[0]}"
        elif len(ins) == 1 and text[0] in "+-*/":      # a constant after: "v3 **2", "v3 + 1.5"
            formula = f"{ins[0]} {text}"
        else:
            formula = f"{text}({', '.join(ins)})"
        return _record(node).replace(node.label, f"{node.label} = {formula}", 1)
    char_w, box_h, gap_x, gap_y, margin = 6.6, 20, 14, 14, 6
    pos, rows = {}, {}
    for node in values:
        rows.setdefault(level[node.id], []).append(node)
    y, width = margin, 0
    for lv in sorted(rows):
        x = margin
        for node in rows[lv]:
            w = char_w * len(label(node)) + 12
            if x > margin and x + w > PAGE_WIDTH:  # a crowded row wraps
                x, y = margin, y + box_h + gap_y
            pos[node.id] = (x, y, w)
            x += w + gap_x
            width = max(width, x)
        y += box_h + gap_y
    height = y
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0f}\" height=\"{height}\" "
           f"style=\"max-width:100%;height:auto\" viewBox=\"0 0 {width:.0f} {height}\" font-family=\"monospace\" "
           "font-size=\"11\">"]
    for v, ins in value_inputs.items():
        if v not in pos:
            continue
        vx, vy, vw = pos[v]
        for i in ins:
            if i in pos:
                ix, iy, iw = pos[i]
                out.append(f"<line x1=\"{ix + iw / 2:.0f}\" y1=\"{iy}\" x2=\"{vx + vw / 2:.0f}\" y2=\"{vy + box_h}\" "
                           "stroke=\"#999\"/>")
    for node in values:
        x, y, w = pos[node.id]
        fill, stroke = ("#ffb3b3", "#cf222e") if node.wrong else ("#fff", "#333")
        if node.id == output:
            stroke = "#0969da"
        kind = ("wrong-node" if node.wrong else "node") + (" output-node" if node.id == output else "")
        out.append(f"<g class=\"{kind}\"><rect x=\"{x:.0f}\" y=\"{y}\" width=\"{w:.0f}\" height=\"{box_h}\" "
                   f"fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{3 if node.id == output else 1}\"/>"
                   f"<text x=\"{x + 6:.0f}\" y=\"{y + box_h / 2 + 4}\">{_e(label(node))}</text></g>")
    out.append("</svg>")
    return "".join(out)


def expression_graphs(kept: list, extras: Extras, limit: int = 2) -> str:
    """Each graph as draw_dot drew it, fitted to the page: where the whole graph is wider than the page,
    only the part that explains the wrong grads (see `focus`), and above it the wrong values in words
    (yours and the true grad)."""
    parts = []
    drawn_by = ""
    for case, outputs, truth in kept[:limit]:
        if not isinstance(outputs, dict) or "program" not in case.inputs:
            continue
        program = case.inputs["program"]
        from autograder.assignments.micrograd import torch_program
        _, true = torch_program(program)
        nodes, edges = program_graph(program, outputs, true["grads"])
        output_id = next((n.id for n in reversed(nodes) if not n.op), "")
        wrong_nodes = [n for n in nodes if not n.op and n.wrong]
        left_out, compact = 0, False
        if wrong_nodes and _layout_width(nodes, edges) > PAGE_WIDTH:
            nodes, edges, left_out = focus(nodes, edges, output_id)
        if _layout_width(nodes, edges) > PAGE_WIDTH:
            compact = True  # still wider than the page: top to bottom, operations folded into values
            svg = compact_svg(nodes, edges)
        else:
            svg = graphviz_svg(nodes, edges)
            drawn_by = drawn_by or ("graphviz" if svg is not None else "fallback")
            if svg is None:
                svg = simple_svg(nodes, edges)
            else:
                svg = svg.replace("<svg ", "<svg style=\"max-width:100%;height:auto\" ", 1)
        listed = "; ".join(f"{n.label}: grad {'?' if n.grad is None else f'{n.grad:.4g}'}, true {n.true_grad:.4g}"
                           for n in wrong_nodes[:8]) + ("; …" if len(wrong_nodes) > 8 else "")
        cut = (f" Only the part between the wrong values and the output (blue frame) is drawn; {left_out} "
               f"value{' with a right grad is' if left_out == 1 else 's with right grads are'} left out."
               if left_out else " The output has a blue frame.")
        if compact:
            cut += (" Too wide for the page from left to right: drawn top to bottom from the output, each "
                    "operation written into the value it makes.")
        parts.append(f"<figure class=\"graph\" id=\"graph-{_e(case.id)}\"><figcaption>public case {_e(case.id)} "
                     f"({_e(case.label)}): "
                     f"{len(wrong_nodes)} value{'s' if len(wrong_nodes) != 1 else ''} with a wrong grad (red)."
                     f"{_e(cut)}</figcaption>"
                     + (f"<p class=\"wrong graph-wrong\">{_e(listed)}</p>" if listed else "")
                     + f"<div class=\"graph-box\">{svg}</div></figure>")
    if not parts:
        return ""
    note = ("drawn by graphviz, as micrograd's draw_dot" if drawn_by == "graphviz" else
            "graphviz's dot program is not installed here: drawn with a simple layout of our own "
            "(install graphviz for draw_dot's own layout)" if drawn_by else
            "drawn with a layout of our own that fits the page")
    return f"<h3>Expression graphs</h3><p class=\"note graph-note\">{_e(note)}</p>{''.join(parts)}"


# -- backprop ninja: train, the loss curve, sampled names ---------------------------------------------------

def train_and_sample(submission: Path, runner, steps: int, samples: int) -> dict:
    """The student's `train` from the lecture's initialisation, then names sampled from the trained model,
    both in the student's process, in two runs: the loss curve comes back whatever sampling does (a
    diverged model never samples the '.' that ends a name; the sampler is bounded in length and time).
    The true curve: autograd's gradients on the same batches, here."""
    from autograder.assignments.backprop_ninja import model as ninja
    X, Y = ninja._examples()
    inputs = {"params": ninja.init_params(ninja.LECTURE_SEED), "X": X, "Y": Y, "steps": steps, "lr": 0.1,
              "batch_size": ninja.BATCH_SIZE, "seed": 0}
    if not (submission / "backprop_ninja.py").is_file():
        return {"message": "no backprop_ninja.py in the submission"}
    side = "autograder.assignments.backprop_ninja.report_side"
    run = runner.run(submission, "backprop_ninja", f"{side}:drive_train", inputs,
                     time_limit=max(60.0, steps * 0.1), memory_mb=2048)
    # (No autograd tripwire here: the `train` exercise's grading already refuses autograd in the
    # student's training step.)
    info: dict = {"steps": steps, "true_losses": true_curve(inputs)}
    if run.output:
        info["output"] = run.output
    if run.status != "ok" or run.autograd_calls:
        what = "uses autograd: compute the gradients by hand" if run.autograd_calls else \
            {"not_implemented": "train (or a function it calls) is not implemented yet"}.get(run.status, "")
        info["message"] = what or f"{run.status}: {run.message}" + (f" ({run.where})" if run.where else "")
        return info
    outputs = run.outputs if isinstance(run.outputs, dict) else {}
    losses = outputs.get("losses")
    if isinstance(losses, list) and all(isinstance(x, (int, float)) for x in losses):
        info["losses"] = [float(x) for x in losses]
    else:
        info["message"] = "train must return the list of the losses of every step"
    params = outputs.get("params")
    if samples > 0 and _parameters_ok(params, inputs["params"]):
        drawn = runner.run(submission, "backprop_ninja", f"{side}:drive_sample",
                           {"params": params, "X": X, "count": samples, "seconds": 5.0},
                           time_limit=20.0, memory_mb=2048)
        got = drawn.outputs if drawn.status == "ok" and isinstance(drawn.outputs, dict) else {}
        if isinstance(got.get("names"), list):
            info["names"] = [str(n)[:40] for n in got["names"][:samples]]
        if got.get("stopped"):
            info["names_message"] = str(got["stopped"])
        elif drawn.status != "ok":
            info["names_message"] = f"{drawn.status}: {drawn.message}"
    elif samples > 0:
        info["names_message"] = "train did not leave the parameters as tensors of their shapes: nothing to sample from"
    return info


def _parameters_ok(params, like: dict) -> bool:
    from autograder.core.compare import as_tensor
    if not isinstance(params, dict):
        return False
    for name, value in like.items():
        t = as_tensor(params.get(name))
        if t is None or tuple(t.shape) != tuple(value.shape) or not t.is_floating_point():
            return False
    return True


def true_curve(inputs: dict) -> list[float]:
    """The template's `train` with autograd's gradients: the same batches (same generator) and update."""
    import torch
    import torch.nn.functional as F
    from autograder.assignments.backprop_ninja.model import BN_EPS
    params = {k: v.clone().requires_grad_(True) for k, v in inputs["params"].items()}
    X, Y = inputs["X"], inputs["Y"]
    g = torch.Generator().manual_seed(inputs["seed"])
    losses = []
    for _ in range(inputs["steps"]):
        ix = torch.randint(0, X.shape[0], (inputs["batch_size"],), generator=g)
        Xb, Yb = X[ix], Y[ix]
        hprebn = params["C"][Xb].view(Xb.shape[0], -1) @ params["W1"] + params["b1"]
        bnmean = hprebn.mean(0, keepdim=True)
        bnvar = hprebn.var(0, keepdim=True, unbiased=True)
        hpreact = params["bngain"] * (hprebn - bnmean) * (bnvar + BN_EPS) ** -0.5 + params["bnbias"]
        loss = F.cross_entropy(torch.tanh(hpreact) @ params["W2"] + params["b2"], Yb)
        for p in params.values():
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params.values():
                p -= inputs["lr"] * p.grad
        losses.append(loss.item())
    return losses


def _plot_top(true_losses: list[float]) -> float:
    finite = [x for x in true_losses if math.isfinite(x)]
    return (max(finite) if finite else 5.0) * 1.5


def clip_note(losses: list[float] | None, true_losses: list[float]) -> str:
    """Where the student's curve leaves the plot (scaled to the true curve) or stops being a number."""
    if not losses:
        return ""
    top = _plot_top(true_losses)
    over = [i for i, x in enumerate(losses) if math.isfinite(x) and x > top]
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    parts = []
    if over:
        parts.append(f"yours leaves the plot at step {over[0]} (▲; loss {losses[over[0]]:.3g}, "
                     f"at most {max(losses[i] for i in over):.3g})")
    if bad:
        parts.append(f"yours is {losses[bad[0]]} from step {bad[0]} (×)")
    return "; ".join(parts)


def loss_curve_png(losses: list[float] | None, true_losses: list[float]) -> str:
    """Both curves on one axis scaled to the true curve: a diverging curve of the student's is still drawn,
    clipped at the top with a mark (▲ where it leaves the plot, × where it becomes NaN or inf)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(true_losses, color="#888", linewidth=1.2, label="true (autograd's gradients)")
    top = _plot_top(true_losses)
    bottom = min(0.0, min((x for x in true_losses if math.isfinite(x)), default=0.0))
    note = clip_note(losses, true_losses)
    if losses:
        colour = "#cf222e" if _diverged(losses, true_losses) else "#0969da"
        shown = [min(x, top) if math.isfinite(x) else math.nan for x in losses]
        ax.plot(shown, color=colour, linewidth=1.4, alpha=0.9, label="yours (your train)")
        over = next((i for i, x in enumerate(losses) if math.isfinite(x) and x > top), None)
        bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
        if over is not None or bad is not None:
            # the clip level, drawn, a little below the frame so the clipped stretch of the curve shows
            ax.axhline(top, color=colour, linestyle=":", linewidth=0.8)
            ax.text(0.01, top, " clipped here", color=colour, fontsize=7, va="bottom",
                    transform=ax.get_yaxis_transform())
        if over is not None:
            ax.plot([over], [top], marker="^", color=colour, markersize=9, clip_on=False)
        if bad is not None:
            ax.plot([bad], [top], marker="x", color=colour, markersize=10, mew=2, clip_on=False)
    ax.set_ylim(bottom, top * 1.08)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8, loc="upper right")
    if note:
        ax.set_title(note, fontsize=8, color="#cf222e")
    ax.grid(alpha=0.3)
    return _png(fig)


def _diverged(losses, true_losses) -> bool:
    n = min(len(losses), len(true_losses))
    return n == 0 or any(not math.isfinite(a) or abs(a - b) > 1e-3 * (1 + abs(b))
                         for a, b in zip(losses[:n], true_losses[:n]))


def training_section(info: dict) -> str:
    parts = ["<section id=\"training\"><h2>Training with your backward</h2>"]
    if info.get("message"):
        parts.append(f"<p class=\"wrong\">{_e(info['message'])}</p>")
    if info.get("true_losses"):
        losses = info.get("losses")
        verdict = "your train returned no losses: only the true curve is drawn"
        if losses:
            verdict = ("your curve (blue) follows the true one" if not _diverged(losses, info["true_losses"]) else
                       "your curve (red) departs from the true one: a gradient (or the update) is off")
        clipped = clip_note(losses, info["true_losses"])
        parts.append(f"<p>{_e(info.get('steps', ''))} steps of SGD (lr 0.1, batch 32) from the lecture's "
                     f"initialisation. {_e(verdict)}</p>"
                     + (f"<p class=\"wrong clip-note\">{_e(clipped)}</p>" if clipped else "")
                     + f"<figure class=\"loss-curve\"><img alt=\"loss curve\" "
                     f"src=\"{loss_curve_png(losses, info['true_losses'])}\"></figure>")
    if info.get("names"):
        parts.append("<h3>Names sampled from your trained model</h3><p class=\"note\">at most "
                     "24 characters each (… marks a name cut there)</p><ul class=\"names\">"
                     + "".join(f"<li>{_e(n)}</li>" if n else "<li class=\"note\">(empty: '.' came first)</li>"
                               for n in info["names"]) + "</ul>")
    if info.get("names_message"):
        parts.append(f"<p class=\"wrong\">sampling: {_e(info['names_message'])}</p>")
    if info.get("output"):
        parts.append(f"<pre class=\"student-output\">{_e(info['output'][-MAX_OUTPUT_CHARS:])}</pre>")
    parts.append("</section>")
    return "".join(parts)


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
