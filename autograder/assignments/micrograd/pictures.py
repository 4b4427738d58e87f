"""micrograd, what the HTML report draws: each expression graph as micrograd's `draw_dot` drew it (left to
right, a record "data | grad" per value, an oval per operation), the values whose grad is wrong in red;
without graphviz's `dot` binary, the same picture laid out here as plain SVG (the page says so).

The report calls the same three functions of every assignment's `pictures`: `exercise_pictures` (under an
exercise's table), `gather` (anything run after grading) and `section` (its own part of the page).
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass

from autograder.core.compare import as_tensor
from autograder.frontends.report import _e
from autograder.assignments.micrograd.cases import torch_program
from autograder.assignments.micrograd.student_side import OPS


def exercise_pictures(exercise, kept: list, tolerance) -> str:
    """The expression graphs of the random expressions' public cases; nothing for the other exercises."""
    return expression_graphs(kept) if exercise.id.endswith(".expressions") else ""


def gather(submission, runner, settings, status) -> None:
    return None  # nothing to run after grading


def section(gathered) -> str:
    return ""


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


def expression_graphs(kept: list, limit: int = 2) -> str:
    """Each graph as draw_dot drew it, fitted to the page: where the whole graph is wider than the page,
    only the part that explains the wrong grads (see `focus`), and above it the wrong values in words
    (yours and the true grad)."""
    parts = []
    drawn_by = ""
    for case, outputs, truth in kept[:limit]:
        if not isinstance(outputs, dict) or "program" not in case.inputs:
            continue
        program = case.inputs["program"]
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
