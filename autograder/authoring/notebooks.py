"""The nbgrader source notebooks, generated from the one source, `reference/` (DESIGN.md, decision 2).

`generate(root, check)` writes `assignments/source/<assignment>/<assignment>.ipynb` for every assignment
whose reference files and exercises exist. `make templates` calls it (through `templating.generate`).

How a reference module becomes cells:
- it is split at jupytext's `# %%` cell markers where the author used them, else at top-level
  definitions (a def or class with the comments just above it is a cell; the statements between
  definitions are a cell);
- a cell with a `### BEGIN SOLUTION` region is an nbgrader *solution* cell (the student edits it;
  `nbgrader generate_assignment` replaces the region with a stub: see `integrations.nbgrader.course`, ClearSolutionsWithStubs);
  every other code cell is *locked* given code;
- every code cell starts with a header, `# file: micrograd/engine.py (part 2 of 5)`: the notebook's
  setup cell records each cell as it runs, so a grade cell can write the student's modules to a
  temporary directory and grade them in a separate process, exactly as `make check` grades files;
- imports between the assignment's own files (`from micrograd.engine import Value`) are left out of
  the cells (the names are already in the notebook) and put back when the modules are written;
- a `if __name__ == "__main__":` block is left out (a notebook is `__main__`: it would run it);
- each exercise's *grade* cell comes right after the cell that defines its entry point (or after the
  cells that entry point needs) and calls `notebook_grade(exercise_id, points=...)`.
The markdown follows the lecture: the assignment's introduction below, each module's docstring, and
the markdown cells of the reference (`# %% [markdown]`).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.authoring.templating import BEGIN, sync_tree

HEADER = "# file: {path} (part {part} of {total})"
HEADER_RE = re.compile(r"^# file: (?P<path>[\w./-]+\.py) \(part (?P<part>\d+) of (?P<total>\d+)\)")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
SCHEMA_VERSION = 3

# The lecture's story, told once per assignment (the reference modules' docstrings follow it).
INTRO = {
    "micrograd": """\
# micrograd: a scalar autograd engine

This follows Andrej Karpathy's *The spelled-out intro to neural networks and backpropagation:
building micrograd*. A `Value` wraps one number. Every operation (`+`, `*`, `**`, `tanh`, `exp`...)
returns a new `Value` that remembers its inputs (`_prev`) and knows its *local* derivative: its
`_backward` closure pushes the output's gradient to its inputs by the chain rule. `backward()`
orders the graph topologically and calls every `_backward` from the output back to the leaves.

Two things to keep in mind, as in the lecture:
- gradients **accumulate** (`+=`, not `=`): a value used twice (`a + a`, or a weight shared by
  several neurons) receives a contribution from every use;
- `backward()` seeds the output with `grad = 1.0` and walks the nodes in *reverse* topological order,
  so that a node's gradient is complete before it is propagated.

`nn` builds `Neuron`, `Layer` and `MLP` out of `Value`s.""",
    "graphs": """\
# Computational graphs and backpropagation

This follows Stanford CS231n, lecture 4 (*Backpropagation and neural networks*). Any expression is a
graph of gates; backpropagation is the chain rule applied gate by gate, from the output back:
**downstream gradient = local gradient x upstream gradient**.

Patterns in gradient flow:
- the **add** gate *distributes* the upstream gradient unchanged to all its inputs;
- the **mul** gate *switches*: each input gets the upstream gradient times the *other* input;
- the **max** gate *routes* the gradient to the larger input only;
- the **sigmoid** gate's local gradient is `(1 - s) * s`;
- where a value **fans out** to several gates, the gradients from every branch **add**.

Worked examples: `f(x, y, z) = (x + y) z` at `x = -2, y = 5, z = -4`, the 2-D sigmoid neuron
`f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2)))`, and the vectorised `f(x, W) = ||W x||^2`
(where `df/dW = 2 q x^T` with `q = W x`: a gradient always has the shape of its variable).""",
    "backprop_ninja": """\
# Becoming a backprop ninja

This follows Andrej Karpathy's *Building makemore part 4: becoming a backprop ninja*: a two-layer
MLP with batch normalisation on the names dataset, and its backward pass **by hand**, tensor by
tensor, without `loss.backward()`.

- **Exercise 1**: backpropagate through every intermediate of the forward pass (`dlogprobs`,
  `dprobs`, ..., `dhpreact`, `dbngain`, ..., `demb`, `dC`). A gradient has the shape of its tensor;
  where a tensor was broadcast in the forward pass, its gradient is *summed* over the broadcast
  dimension (`keepdim=True`); where a tensor is used twice, the gradients add.
- **Exercise 2**: the cross-entropy backward in one expression: `dlogits = (softmax(logits) - onehot) / n`.
- **Exercise 3**: the batchnorm backward in one expression (mind Bessel's `n - 1`).
- **Exercise 4**: train the network with your own backward pass.

The tanh backward is `(1 - h**2) * dh`; the embedding backward adds each row of `demb` into the row
of `C` it was looked up from (`index_add_`, a loop, or a one-hot matmul).""",
    "micrograd_exercises": """\
# micrograd exercises

The exercise notebook that ends Andrej Karpathy's micrograd lecture ("you should now be able to
complete the following google collab"), with its names and code:
- **section 1, derivatives**: the analytic gradient `gradf(a, b, c)` of
  `f(a, b, c) = -a**3 + sin(3*b) - 1.0/c + b**2.5 - a**0.5` (mind the chain rule in `sin(3*b)`);
  the same gradient estimated numerically, `(f(a + h, b, c) - f(a, b, c)) / h` with a step `h` of
  your choice (neither too large: the error is about `h/2 * f''`; nor too small: rounding eats the
  digits); then the **symmetric derivative** `(f(x + h) - f(x - h)) / (2h)` at a given `h`, which is
  much closer for the same `h`;
- **section 2, support for softmax**: the `Value` operations a softmax over logits and its negative
  log likelihood need (`exp`, `log`, `**`, `*`, `/`, `-`, and `c + a` for `sum()`), each with its
  `_backward`; then `softmax(logits)` and `nll(probs, label) = -probs[label].log()`, checked against
  PyTorch.

What the notebook computes once at `(2, 3, 4)` is a function here, so that it is also checked at
other points (and `numerical_grad` with another `f`: it must use `f`'s values, not calculus).""",
}

HOW_GRADED = """\
## How this notebook is graded

Fill in the cells that say `# YOUR CODE HERE` (and the `None  # TODO` lines): keep the
`# file: ...` first line of each cell, which tells the grader which module the cell belongs to.
Each **Check** cell runs your code on its own cases in a separate process and compares every result
with PyTorch autograd: `exact`, `approximate` (within the dtype's tolerance) or wrong, with the
largest difference and the shapes, in the style of the lecture's `cmp` helper, and a hint for every
wrong answer. A step that is right but was given a wrong upstream gradient is reported as such.
The number at the end of a Check cell is your points for it. When your notebook is autograded, the
checks also run hidden cases (other seeds and sizes); only a summary of those is shown."""

SETUP = """\
# Setup (read-only). The grader records each "# file: ..." cell when it runs, so that the Check cells
# can grade your code as modules in a separate process, as `make check` does.
from autograder.integrations.nbgrader.kernel import start_notebook
start_notebook({assignment!r}, links={links})"""

GRADE = """\
# Check {exercise_id} (read-only): runs your code above on the grader's cases.
from autograder.integrations.nbgrader.kernel import notebook_grade
notebook_grade({exercise_id!r}, points={points!r})"""


def grade_id(name: str) -> str:
    """nbgrader's grade ids allow only letters, digits, `_` and `-`: `micrograd.backward` is
    `micrograd-backward` in the gradebook (exercise ids never contain `-`, so it reads back)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


class NotebookError(ValueError):
    pass


@dataclass
class Chunk:
    kind: str                       # "markdown" | "code"
    source: str
    defines: set = field(default_factory=set)   # top-level names it binds
    uses: set = field(default_factory=set)      # names it loads


# -- reading a reference module --------------------------------------------------------------------------

def module_name(path: str) -> str:
    return path[:-3].replace("/", ".").removesuffix(".__init__")


def _import_target(node: ast.stmt, this: str) -> list[str]:
    """The modules a top-level import statement imports (relative ones resolved against `this`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = this.split(".")[: -node.level]
            base = ".".join(package + ([base] if base else []))
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _names(node: ast.AST) -> tuple[set, set]:
    """(names bound at the top level by `node`, names it loads anywhere)."""
    defines: set = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        defines.add(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        defines |= {(a.asname or a.name).split(".")[0] for a in node.names}
    else:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                defines.add(sub.id)
    uses = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}
    return defines, uses


def _split_code(source: str, path: str, local_modules: set[str]) -> tuple[list[Chunk], list[str], str]:
    """Split plain code into chunks at top-level definitions.

    Returns (chunks, link imports removed, module docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(f"{path}:{exc.lineno}: cannot parse: {exc.msg}") from exc
    lines = source.splitlines()
    this = module_name(path)
    body = list(tree.body)
    docstring = ""
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = body[0].value.value
        lines_taken_until = body[0].end_lineno
        body = body[1:]
    else:
        lines_taken_until = 0
    # Each top-level statement owns its lines up to the next one's: the comments at column 0 just above a
    # statement are its own (its explanation); indented comments after a body (`### END SOLUTION`) are
    # the body's.
    spans = []
    for k, node in enumerate(body):
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        floor = body[k - 1].end_lineno if k else lines_taken_until
        while start - 1 > floor and lines[start - 2].startswith("#") and "SOLUTION" not in lines[start - 2]:
            start -= 1
        spans.append(start)
    spans.append(len(lines) + 1)
    links: list[str] = []
    groups: list[tuple[bool, list[ast.stmt], int, int]] = []   # (is a definition, statements, first, last line)
    for k, node in enumerate(body):
        first, last = spans[k], spans[k + 1] - 1
        if _is_main_guard(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)) and \
                any(t in local_modules for t in _import_target(node, this)):
            links.append(ast.get_source_segment(source, node))
            continue
        is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        if is_def or not groups or groups[-1][0]:
            groups.append((is_def, [node], first, last))
        else:
            groups[-1] = (False, groups[-1][1] + [node], groups[-1][2], last)
    chunks = []
    for _, nodes, first, last in groups:
        text = "\n".join(lines[first - 1:last]).strip("\n")
        chunk = Chunk("code", text)
        for node in nodes:
            d, u = _names(node)
            chunk.defines |= d
            chunk.uses |= u
        chunks.append(chunk)
    return chunks, [link for link in links if link], docstring


def split_module(source: str, path: str, local_modules: set[str]) -> tuple[list[Chunk], list[str]]:
    """A reference module as markdown and code chunks, and its imports of the assignment's own modules."""
    chunks: list[Chunk] = []
    links: list[str] = []
    if re.search(r"^# %%", source, flags=re.M):
        import jupytext
        for cell in jupytext.reads(source, fmt="py:percent").cells:
            if cell.cell_type == "markdown":
                chunks.append(Chunk("markdown", cell.source))
            elif cell.source.strip():
                sub, sub_links, doc = _split_code(cell.source, path, local_modules)
                if doc.strip():
                    chunks.append(Chunk("markdown", _docstring_markdown(doc)))
                links += sub_links
                if sub:  # a `# %%` cell stays one cell
                    merged = Chunk("code", "\n\n".join(c.source for c in sub))
                    for c in sub:
                        merged.defines |= c.defines
                        merged.uses |= c.uses
                    chunks.append(merged)
    else:
        code, links, doc = _split_code(source, path, local_modules)
        if doc.strip():
            chunks.append(Chunk("markdown", _docstring_markdown(doc)))
        chunks += code
    return chunks, links


def _docstring_markdown(doc: str) -> str:
    import inspect
    return inspect.cleandoc(doc)


def file_order(files: dict[str, str]) -> list[str]:
    """The assignment's files, each after the files it imports."""
    modules = {module_name(p): p for p in files}
    deps = {}
    for path, source in files.items():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        targets = {t for node in tree.body for t in _import_target(node, module_name(path))}
        deps[path] = sorted(modules[t] for t in targets if t in modules and modules[t] != path)
    order: list[str] = []

    def visit(path, stack=()):
        if path in order or path in stack:
            return
        for dep in deps[path]:
            visit(dep, stack + (path,))
        order.append(path)

    for path in sorted(files, key=lambda p: (p.endswith("__init__.py"), p)):
        visit(path)
    return order


# -- building the notebook --------------------------------------------------------------------------------

def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _cell_id(grade_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", grade_id)[:64]


def build_notebook(assignment: str, files: dict[str, str], exercises) -> nbformat.NotebookNode:
    """The nbgrader source notebook of an assignment: `files` maps path (relative to the submission
    root, e.g. "micrograd/engine.py") to reference source; `exercises` are the assignment's Exercises."""
    local_modules = {module_name(p) for p in files}
    cells: list[nbformat.NotebookNode] = []
    links: dict[str, list[str]] = {}
    # Per file: its code chunks, for placing the grade cells.
    placed: list[tuple[str, Chunk, nbformat.NotebookNode | None]] = []
    order = [p for p in file_order(files) if not p.endswith("__init__.py")]

    cells.append(nbformat.v4.new_markdown_cell(INTRO.get(assignment, f"# {assignment}"), id="intro"))
    cells.append(nbformat.v4.new_markdown_cell(HOW_GRADED, id="how-graded"))
    setup = nbformat.v4.new_code_cell("", id="setup", metadata=_meta(grade_id(f"{assignment}.setup"), locked=True))
    cells.append(setup)
    for path in order:
        chunks, file_links = split_module(files[path], path, local_modules)
        if file_links:
            links[path] = file_links
        code_chunks = [c for c in chunks if c.kind == "code"]
        cells.append(nbformat.v4.new_markdown_cell(f"## `{path}`", id=_cell_id(f"head-{path}")))
        part = 0
        for chunk in chunks:
            if chunk.kind == "markdown":
                cells.append(nbformat.v4.new_markdown_cell(chunk.source, id=_cell_id(f"md-{path}-{len(cells)}")))
                continue
            part += 1
            cell_name = grade_id(f"{module_name(path)}.part{part}")
            source = HEADER.format(path=path, part=part, total=len(code_chunks)) + "\n" + chunk.source
            solution = BEGIN in chunk.source
            cell = nbformat.v4.new_code_cell(source, id=_cell_id(cell_name),
                                             metadata=_meta(cell_name, solution=solution, locked=not solution))
            cells.append(cell)
            placed.append((path, chunk, cell))
    setup.source = SETUP.format(assignment=assignment, links=json.dumps(links, indent=None))

    # Grade cells: after the cell that defines the entry point and every later cell it needs.
    after: dict[int, list] = {}
    for exercise in exercises:
        index = _grade_position(exercise, placed)
        after.setdefault(index, []).append(exercise)
    out = []
    positions = {id(cell): i for i, (_, _, cell) in enumerate(placed)}
    for cell in cells:
        out.append(cell)
        for exercise in after.get(positions.get(id(cell), -1), []):
            out.append(nbformat.v4.new_markdown_cell(
                f"### Check `{exercise.id}` ({_points(exercise.points)} point{'' if exercise.points == 1 else 's'})"
                + (f"\n\n{exercise.title}" if exercise.title and exercise.title != exercise.entry else ""),
                id=_cell_id(f"about-{exercise.id}")))
            out.append(nbformat.v4.new_code_cell(
                GRADE.format(exercise_id=exercise.id, points=float(exercise.points)), id=_cell_id(exercise.id),
                metadata=_meta(grade_id(exercise.id), grade=True, locked=True, points=float(exercise.points))))
    nb = nbformat.v4.new_notebook(cells=out, metadata={
        "kernelspec": KERNELSPEC, "language_info": {"name": "python"},
        "backprop_lab": {"assignment": assignment,
                         "generated_from": [f"reference/{p}" for p in order],
                         "note": "generated by `make templates` from reference/: edit the reference, not this file"}})
    nbformat.validate(nb)
    return nb


def _points(x: float) -> str:
    return f"{x:g}"


def _grade_position(exercise, placed) -> int:
    """Index in `placed` after which the exercise's grade cell goes."""
    files = [f for f in exercise.required_files if f.endswith(".py")]
    if not placed:
        return -1
    main = files[0] if files else None
    last_of = {}
    for i, (path, _, _) in enumerate(placed):
        last_of[path] = i
    # Every other file the exercise needs is complete before its grade cell.
    position = max([last_of[f] for f in files[1:] if f in last_of] + [0])
    if main not in last_of:
        return max(position, len(placed) - 1)
    own = [i for i, (path, _, _) in enumerate(placed) if path == main]
    entry = exercise.entry.split(".")[0]  # "Value.backward" is defined by the cell of `class Value`
    defining = [i for i in own if entry in placed[i][1].defines]
    if not defining:
        return max(position, own[-1])
    # The entry's cell and, transitively, the later cells of the same file defining what it uses.
    needed, frontier = {defining[0]}, [defining[0]]
    while frontier:
        i = frontier.pop()
        for j in own:
            if j not in needed and placed[j][1].defines & placed[i][1].uses:
                needed.add(j)
                frontier.append(j)
    return max(position, max(needed))


# -- the course ------------------------------------------------------------------------------------------

def assignment_files(root: Path, exercises) -> dict[str, str]:
    """The reference sources an assignment's exercises grade (and the modules those import)."""
    reference = root / "reference"
    wanted = []
    for exercise in exercises:
        for f in exercise.required_files:
            if f.endswith(".py") and f not in wanted:
                wanted.append(f)
    files = {f: (reference / f).read_text() for f in wanted if (reference / f).is_file()}
    # Sibling modules of the same package that a graded module imports (e.g. nn.py -> engine.py).
    changed = True
    while changed:
        changed = False
        for path, source in list(files.items()):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in tree.body:
                for target in _import_target(node, module_name(path)):
                    candidate = target.replace(".", "/") + ".py"
                    if candidate not in files and (reference / candidate).is_file() and \
                            candidate.split("/")[0] == path.split("/")[0] and "/" in path:
                        files[candidate] = (reference / candidate).read_text()
                        changed = True
    return files


def notebook_files(root: Path) -> dict[Path, str]:
    """Relative path (under assignments/source) -> notebook JSON, for every assignment that exists."""
    from autograder.assignments import NAMES, exercises as exercises_of
    out = {}
    for name in NAMES:
        exercises = exercises_of(name)
        files = assignment_files(root, exercises)
        if not exercises or not files:
            continue
        nb = build_notebook(name, files, exercises)
        out[Path(name) / f"{name}.ipynb"] = nbformat.writes(nb) + "\n"
    return out


def generate(root: Path, check: bool = False) -> list[Path]:
    """Write (or, with `check`, only list) the source notebooks that differ from what is on disk."""
    root = Path(root)
    target = root / "assignments" / "source"
    files = notebook_files(root)
    changed = sync_tree(target, files, check)
    # A notebook whose assignment is gone is stale too (sync_tree only prunes .py files).
    for path in sorted(target.rglob("*.ipynb")) if target.is_dir() else []:
        rel = path.relative_to(target)
        if rel not in files and ".ipynb_checkpoints" not in rel.parts:
            changed.append(path)
            if not check:
                path.unlink()
    return changed
