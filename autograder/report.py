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

from .result import GradeResult
from .verdicts import APPROX, ERROR, EXACT, NOT_IMPLEMENTED, TIMEOUT, WRONG

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
                 on_exercise=None) -> str:
    """Grade `submission` on the public cases and return the report page. `status(text)` and
    `on_exercise(result)`: live progress, as `check` shows it."""
    from .assignments import detect, exercises
    from .pipeline import grade, truth_cache_dir
    from .runner import Runner
    status = status or (lambda text: None)
    submission = Path(submission)
    names = assignments or detect(submission)
    exs = [ex for name in names for ex in exercises(name)]
    own = runner is None
    runner = runner or Runner()
    extras = Extras()
    try:
        result = grade(submission, exs, hidden=False, runner=runner, keep_outputs=extras.outputs,
                       on_start=lambda ex: status(f"grading {ex.id}…"), on_exercise=on_exercise,
                       truth_cache=truth_cache_dir())
        if "backprop_ninja" in names and train_steps > 0:
            status(f"training with your backward ({train_steps} steps) and sampling names…")
            extras.training = train_and_sample(submission, runner, train_steps, samples)
    finally:
        if own:
            runner.close()
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
    from .formats import fmt  # the one rounding of exact points, as every front end shows them
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
    return f"<span class=\"wrong\">{_e(fmt(shape))} ≠ {_e(fmt(expected))}</span>"


def _verdict(verdict: str | None) -> str:
    if verdict is None:
        return "<td class=\"verdict\"></td>"
    return f"<td class=\"verdict\" style=\"color:{COLOURS.get(verdict, '#1f2328')}\">{_e(verdict)}</td>"


def _exercise_table(exercise, heading: bool = True) -> str:
    rows = []
    for check in exercise.checks:
        hint = " ".join(x for x in (f"[{check.mistake}]" if check.mistake else "", check.hint or "") if x)
        note = " — ".join(x for x in (hint, check.message or "") if x)
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


def exercise_section(exercise, extras: Extras) -> str:
    parts = [f"<section class=\"exercise\" id=\"{_e(exercise.id)}\"><h2>{_e(exercise.id)}: {_e(exercise.title)} "
             f"({_points(exercise.score)} / {_points(exercise.max_score)})</h2>", _exercise_table(exercise, heading=False)]
    parts.append(_printed(exercise))
    kept = extras.outputs.get(exercise.id) or []
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


def heatmaps(exercise, kept) -> str:
    """For every tensor of the first public case: the true gradient and |yours - true| side by side."""
    from .compare import as_tensor
    case, outputs, truth = kept
    figures, skipped = [], []
    for check in exercise.checks[:MAX_HEATMAPS_PER_EXERCISE]:
        expected = truth.get(check.name)
        exp = as_tensor(expected) if expected is not None else None
        if exp is None or exp.numel() < 2 or not exp.is_floating_point():
            continue
        got = as_tensor(outputs.get(check.name)) if isinstance(outputs, dict) else None
        if got is None:
            skipped.append(f"{check.name}: nothing returned")
            continue
        if got.numel() != exp.numel() or (tuple(got.shape) != tuple(exp.shape) and
                                          tuple(s for s in got.shape if s != 1) != tuple(s for s in exp.shape if s != 1)):
            skipped.append(f"{check.name}: shape {tuple(got.shape)} instead of {tuple(exp.shape)}")
            continue
        figures.append(_heatmap_figure(check.name, _as_2d(exp.double()), _as_2d(got.double().reshape(exp.shape)),
                                       check.verdict))
    if not figures and not skipped:
        return ""
    label = f" ({_e(case.label)})" if case.label else ""
    note = ("<p class=\"note\">Not drawn: " + _e("; ".join(skipped)) + "</p>") if skipped else ""
    return (f"<h3>Heatmaps: the true gradient and |yours − true|, public case {_e(case.id)}{label}</h3>{note}"
            f"<div class=\"figs heatmaps\">{''.join(figures)}</div>")


def _heatmap_figure(name: str, exp, got, verdict: str) -> str:
    import torch
    plt = _pyplot()
    error = (got - exp).abs()
    finite = torch.where(torch.isfinite(error), error, torch.full_like(error, float("nan")))
    rows, cols = exp.shape
    width = min(7.0, 2.2 + 4.0 * min(1.0, cols / 30))
    height = min(3.2, 0.9 + 2.2 * min(1.0, rows / 30))
    fig, axes = plt.subplots(1, 2, figsize=(width, height))
    aspect = "auto"
    axes[0].imshow(exp.numpy(), cmap="gray", aspect=aspect, interpolation="nearest")
    axes[0].set_title(f"true d{name}", fontsize=9)
    largest = float(finite.nan_to_num(0.0).max()) if finite.numel() else 0.0
    # black is 0: an all-black error map is an exact answer
    image = axes[1].imshow(finite.numpy(), cmap="magma", aspect=aspect, interpolation="nearest", vmin=0.0,
                           vmax=largest if largest > 0 else 1.0)
    axes[1].set_title("|yours − true|" + ("" if largest > 0 else " = 0"), fontsize=9)
    fig.colorbar(image, ax=axes[1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
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
    from .assignments.micrograd import torch_program
    from .compare import as_tensor
    from .assignments.micrograd.student_side import OPS
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
    grad = "?" if node.grad is None else f"{node.grad:.4f}"
    return f"{node.label} | data {node.data:.4f} | grad {grad}"


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
    box_w, box_h, op_w, gap_x, gap_y = 250, 26, 60, 40, 14
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
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{x}\" height=\"{height}\" "
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
            out.append(f"<g class=\"{'wrong-node' if node.wrong else 'node'}\"><rect x=\"{nx}\" y=\"{ny}\" "
                       f"width=\"{w}\" height=\"{box_h}\" fill=\"{fill}\" stroke=\"{stroke}\"/>"
                       f"<text x=\"{nx + 6}\" y=\"{ny + box_h / 2 + 4}\">{_e(_record(node))}</text>"
                       + (f"<title>true grad {node.true_grad:.6g}</title>" if node.true_grad is not None else "")
                       + "</g>")
    out.append("</svg>")
    return "".join(out)


def expression_graphs(kept: list, extras: Extras, limit: int = 2) -> str:
    parts = []
    drawn_by = ""
    for case, outputs, truth in kept[:limit]:
        if not isinstance(outputs, dict) or "program" not in case.inputs:
            continue
        program = case.inputs["program"]
        from .assignments.micrograd import torch_program
        _, true = torch_program(program)
        nodes, edges = program_graph(program, outputs, true["grads"])
        svg = graphviz_svg(nodes, edges)
        drawn_by = "graphviz" if svg is not None else "fallback"
        if svg is None:
            svg = simple_svg(nodes, edges)
        wrong = sum(1 for n in nodes if not n.op and n.wrong)
        parts.append(f"<figure class=\"graph\"><figcaption>public case {_e(case.id)} ({_e(case.label)}): "
                     f"{wrong} value{'s' if wrong != 1 else ''} with a wrong grad (red)</figcaption>"
                     f"<div style=\"overflow-x:auto; max-width:1150px\">{svg}</div></figure>")
    if not parts:
        return ""
    note = ("drawn by graphviz, as micrograd's draw_dot" if drawn_by == "graphviz" else
            "graphviz's dot program is not installed here: drawn with a simple layout of our own "
            "(install graphviz for draw_dot's own layout)")
    return f"<h3>Expression graphs</h3><p class=\"note graph-note\">{_e(note)}</p>{''.join(parts)}"


# -- backprop ninja: train, the loss curve, sampled names ---------------------------------------------------

def train_and_sample(submission: Path, runner, steps: int, samples: int) -> dict:
    """The student's `train` from the lecture's initialisation, then names sampled from the trained model,
    both in the student's process; the true curve: autograd's gradients on the same batches, here."""
    from .assignments.backprop_ninja import model as ninja
    X, Y = ninja._examples()
    inputs = {"params": ninja.init_params(ninja.LECTURE_SEED), "X": X, "Y": Y, "steps": steps, "lr": 0.1,
              "batch_size": ninja.BATCH_SIZE, "seed": 0, "count": samples}
    if not (submission / "backprop_ninja.py").is_file():
        return {"message": "no backprop_ninja.py in the submission"}
    run = runner.run(submission, "backprop_ninja", "autograder.assignments.backprop_ninja.report_side:drive_train_and_sample",
                     inputs, time_limit=max(60.0, steps * 0.1), memory_mb=2048)
    # (No autograd tripwire here: the lecture's given `sample` runs under torch.no_grad; the `train`
    # exercise's grading already refuses autograd in the student's training step.)
    info: dict = {"steps": steps, "true_losses": true_curve(inputs)}
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
    names = outputs.get("names")
    if isinstance(names, list):
        info["names"] = [str(n) for n in names]
    elif outputs.get("names_error"):
        info["names_message"] = str(outputs["names_error"])
    if run.output:
        info["output"] = run.output
    return info


def true_curve(inputs: dict) -> list[float]:
    """The template's `train` with autograd's gradients: the same batches (same generator) and update."""
    import torch
    import torch.nn.functional as F
    from .assignments.backprop_ninja.model import BN_EPS
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


def loss_curve_png(losses: list[float] | None, true_losses: list[float]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.plot(true_losses, color="#888", linewidth=1.2, label="true (autograd's gradients)")
    if losses:
        ax.plot(losses, color="#cf222e" if _diverged(losses, true_losses) else "#0969da", linewidth=1.0,
                alpha=0.85, label="yours (your train)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
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
        verdict = ""
        if losses:
            verdict = ("your curve follows the true one" if not _diverged(losses, info["true_losses"]) else
                       "your curve departs from the true one: a gradient (or the update) is off")
        parts.append(f"<p>{_e(info.get('steps', ''))} steps of SGD (lr 0.1, batch 32) from the lecture's "
                     f"initialisation. {_e(verdict)}</p><figure class=\"loss-curve\"><img alt=\"loss curve\" "
                     f"src=\"{loss_curve_png(losses, info['true_losses'])}\"></figure>")
    if info.get("names"):
        parts.append("<h3>Names sampled from your trained model</h3><ul class=\"names\">"
                     + "".join(f"<li>{_e(n)}</li>" for n in info["names"]) + "</ul>")
    elif info.get("names_message"):
        parts.append(f"<p class=\"wrong\">sampling failed: {_e(info['names_message'])}</p>")
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
    from .assignments import detect
    if not (args.assignment or detect(submission)):
        print(f"Nothing to grade in {submission}: no assignment files found")
        return 2
    from rich.console import Console
    from rich.text import Text
    from .cli import _progress
    console = Console(stderr=True)

    def graded(ex) -> None:  # one line per exercise as it is graded (the page comes at the end)
        console.print(Text(f"graded {ex.id}: {float(ex.score):g}/{float(ex.max_score):g}"))
    with _progress(console) as status:
        page = build_report(submission, args.assignment, train_steps=args.train_steps, samples=args.samples,
                            status=status, on_exercise=graded)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out} ({len(page) // 1024} KiB): open it in a browser")
    return 0


def register(subparsers) -> None:
    from .assignments import NAMES
    p = subparsers.add_parser("report", help="write a visual HTML report (heatmaps, graphs, loss curve, names)")
    p.add_argument("dir", nargs="?", help="the submission directory (default: student_template/ if present, else .)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("-a", "--assignment", action="append", choices=NAMES, help="only this assignment (repeatable)")
    p.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS,
                   help=f"steps of training with your backward (default {DEFAULT_TRAIN_STEPS}; 0: skip)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="names to sample from the trained model")
    p.set_defaults(func=cmd_report)
