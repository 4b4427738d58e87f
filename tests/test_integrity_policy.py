"""Integrity decided outside the student's process (issue 16), through the grader's own functions and the public
command line, under each isolation mechanism the machine has (bubblewrap; the dedicated user, as root).

- the static policy alone flags every autograd route the tests know (with the guard in the student's process
  switched off), each with its category, line and construct; honest code (the reference, the templates, the
  real engines) is not flagged;
- what the policy found is named for what happened (autograd, a process, native code, a thread left running,
  code it cannot read): only autograd says "autograd";
- a student who prints tensors keeps full marks;
- hidden cases speak a closed vocabulary, and a hidden case's maxdiff is only in the instructor's JSON;
- doing nothing (zeros, constants, copies) earns nothing, in every assignment;
- names a student controls are plain text in every renderer.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.core import pipeline
from autograder.assignments import exercises
from autograder.core.exercise import Seeds
from autograder.integrity.scan import scan_submission

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_autograd_guard import CATEGORY, HOSTILE, submission, with_function  # noqa: E402
from test_isolation import mechanism, user_mechanism  # noqa: E402,F401  (fixtures: bwrap, and the dedicated user)

ROOT = Path(__file__).resolve().parent.parent
NINJA = {ex.entry: ex for ex in exercises("backprop_ninja")}
GRAPHS = {ex.entry: ex for ex in exercises("graphs")}
MICROGRAD = {ex.id: ex for ex in exercises("micrograd")}

# -- routes the earlier rounds did not know (issue 16): (id, assignment, entry, code, category, construct) -------
NEW_ROUTES = [
    ("code_swap_of_the_guards_hooks", "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh, hpreact=None):
            for hook in torch._C._autograd._top_saved_tensors_default_hooks(True) or ():
                hook.__code__ = (lambda t: t).__code__
            x = torch.atanh(h).requires_grad_()
            with torch.enable_grad():
                y = torch.tanh(x)
            return y.grad_fn(dh)
        """, "autograd_used", "enable_grad"),
    ("closure_switches_grad_mode_on", "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh, hpreact=None):
            cells = getattr(torch._C._set_grad_enabled, "__clo" + "sure__")
            switch = [c for c in cells if callable(c.cell_contents)][0].cell_contents
            x = torch.atanh(h).requires_grad_()
            switch(True)
            y = torch.tanh(x) * 1.0
            switch(False)
            return y.grad_fn(dh)
        """, "autograd_used", "__closure__"),
    ("getattr_with_hex_decoded_names", "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh, hpreact=None):
            ag = getattr(torch, bytes.fromhex("6175746f67726164").decode())
            on = getattr(torch, bytes.fromhex("656e61626c655f67726164").decode())
            x = torch.atanh(h).requires_grad_()
            with on():
                y = torch.tanh(x)
            return getattr(ag, bytes.fromhex("67726164").decode())(y, x, dh)[0]
        """, "unreadable_code", "computed at run time"),
    ("decomp_formulas_behind_a_meta_path_finder", "backprop_ninja", "tanh_backward", """
        import sys


        class _Finder:
            def find_spec(self, fullname, path=None, target=None):
                return None


        sys.meta_path.insert(0, _Finder())


        def tanh_backward(h, dh, hpreact=None):
            module = __import__("torch._de" + "comp.decompositions", fromlist=["x"])
            return vars(module)["tanh_" + "backward"](dh, h)
        """, "autograd_used", "meta_path|_decomp"),
    ("exec_of_decoded_text", "graphs", "l2_of_matvec", """
        def l2_of_matvec(W, x):
            import base64
            scope = {"W": W, "x": x}
            exec(base64.b64decode("cHJpbnQoMSk=").decode(), scope)
            q = W @ x
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
        """, "unreadable_code", "exec"),
    ("pickle_runs_code_from_data", "graphs", "l2_of_matvec", """
        def l2_of_matvec(W, x):
            import pickle
            pickle.loads(b"cos\\nsystem\\n(S'true'\\ntR.")
            q = W @ x
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
        """, "unreadable_code", "pickle"),
]
MICROGRAD_ROUTES = [
    ("torch_from_the_driver_module", """
        import student_side
        _torch = student_side.torch
        """, "blocked_module", "torch"),
    ("torch_from_any_module_that_holds_it", """
        import sys
        _torch = [m for m in list(sys.modules.values()) if hasattr(m, "tensor") and hasattr(m, "manual_seed")][0]
        """, "unreadable_code", "sys.modules"),
    ("torch_by_a_built_name", """
        _torch = __import__("tor" + "ch")
        """, "blocked_module", "torch"),
    ("torch_through_a_function_s_globals", """
        _torch = (lambda: 0).__globals__["__builtins__"]["__import__"]("torch")
        """, "unreadable_code", "__globals__"),
]


def _new_route_submission(tmp_path: Path, assignment: str, entry: str, code: str) -> Path:
    sub = tmp_path / "sub"
    sub.mkdir()
    source = (ROOT / "reference" / f"{assignment}.py").read_text()
    module_code, _, function = textwrap.dedent(code).strip().rpartition("\n\n\ndef ")
    source = with_function(source, entry, "def " + function if module_code else textwrap.dedent(code))
    if module_code:  # module-level code goes after the imports, as a student would put it
        head, sep, rest = source.partition("\n\n\n")
        source = head + sep + module_code + "\n\n\n" + rest
    (sub / f"{assignment}.py").write_text(source)
    return sub


def _micrograd_submission(tmp_path: Path, code: str) -> Path:
    sub = tmp_path / "sub"
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd")
    path = sub / "micrograd" / "engine.py"
    path.write_text(textwrap.dedent(code).lstrip() + "\n" + path.read_text())
    return sub


class UnguardedRunner:
    """The session's runner with the guard in the student's process switched off (its tripwires, hooks and
    audit hook not installed) and whatever that process still reports about itself ignored (the backward
    kernels refuse in the fork server): what is left is the static policy."""

    def __init__(self, runner):
        self._runner = runner

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def run_cases(self, *args, **kwargs):
        kwargs["forbid_autograd"] = False
        runs = self._runner.run_cases(*args, **kwargs)
        for run in runs:
            run.autograd_calls = []
        return runs


def _grade(runner, sub: Path, exercise):
    return pipeline.grade(sub, [exercise], hidden=False, runner=runner, seeds=Seeds(hidden=False)).exercises[0]


def _assert_refused(result, category: str, construct: str) -> None:
    assert result.score == 0, (result.id, result.score, [(c.name, c.verdict, c.message) for c in result.checks])
    assert {c.mistake for c in result.checks} == {category}, [(c.name, c.mistake, c.message) for c in result.checks]
    message = result.checks[0].message
    assert re.search(r"line \d+", message) and any(part in message for part in construct.split("|")), message
    if category != "autograd_used":
        assert "autograd" not in message, message


# -- the static policy alone -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,entry,attack,route", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_the_policy_alone_flags_every_known_route(tmp_path, name, entry, attack, route):
    sub = submission(tmp_path, "backprop_ninja", entry, attack)
    found = scan_submission(sub, NINJA[entry].required_files, entry)
    category = CATEGORY.get(name, "autograd_used")
    assert any(c == category for c, _ in found), found


@pytest.mark.parametrize("name,assignment,entry,code,category,construct", NEW_ROUTES, ids=[r[0] for r in NEW_ROUTES])
def test_new_routes_score_zero_with_the_guard_switched_off(runner, tmp_path, name, assignment, entry, code, category,
                                                         construct):
    sub = _new_route_submission(tmp_path, assignment, entry, code)
    exercise = (NINJA if assignment == "backprop_ninja" else GRAPHS)[entry]
    _assert_refused(_grade(UnguardedRunner(runner), sub, exercise), category, construct)


@pytest.mark.parametrize("name,code,category,construct", MICROGRAD_ROUTES, ids=[r[0] for r in MICROGRAD_ROUTES])
def test_torch_smuggled_into_the_scalar_engine_scores_zero_with_the_guard_switched_off(runner, tmp_path, name, code,
                                                                                      category, construct):
    sub = _micrograd_submission(tmp_path, code)
    for exercise in (MICROGRAD["micrograd.ops"], MICROGRAD["micrograd.nn"]):  # module level: every exercise
        _assert_refused(_grade(UnguardedRunner(runner), sub, exercise), category, construct)


def test_a_refusal_costs_only_the_exercises_that_can_reach_it(tmp_path):
    sub = _new_route_submission(tmp_path, "backprop_ninja", "embedding_backward", """
        def embedding_backward(Xb, demb, C):
            name = input()
            return getattr(torch.ops.aten, name)(demb, Xb, C.shape[0], -1, False)
        """)
    for entry, ex in NINJA.items():
        found = scan_submission(sub, ex.required_files, entry)
        reaches = entry in ("embedding_backward", "forward_backward", "train")  # the last two call it
        assert bool(found) == reaches, (entry, found)


def test_class_bodies_decorators_and_defaults_run_at_import(tmp_path):
    path = tmp_path / "graphs.py"
    path.write_text(textwrap.dedent('''
        import torch

        def decorate(f):
            return f

        class Helper:
            table = eval("1 + 1")

        @decorate
        def simple_graph(x, y, z, scale=getattr(torch, input())):
            return (x + y) * z, (z, z, x + y)

        def l2_of_matvec(W, x):
            q = W @ x
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
    '''))
    found = scan_submission(tmp_path, ["graphs.py"], "l2_of_matvec")
    assert any("eval" in text for _, text in found) and any("getattr" in text for _, text in found), found


def test_non_source_files_an_import_could_load_are_refused(tmp_path):
    sub = _new_route_submission(tmp_path, "graphs", "l2_of_matvec", """
        def l2_of_matvec(W, x):
            import helper
            q = W @ x
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
        """)
    (sub / "helper.pyc").write_bytes(b"\x00" * 32)
    found = scan_submission(sub, ["graphs.py"], "l2_of_matvec")
    assert ("unreadable_code", "import helper: helper.pyc is not source code") in found, found
    assert scan_submission(sub, ["graphs.py"], "simple_graph") == []  # simple_graph never imports it


HONEST = '''
import math
import sys
import torch
import torch.nn.functional as F

sys.setrecursionlimit(10000)
NAMES = ("W", "x")


class Gate:
    def __init__(self):
        self.cache = {}

    def __repr__(self):
        return f"{type(self).__name__}({self.__class__.__name__}, {vars(self)})"

    def __add__(self, other):
        return self

    __radd__ = __add__


def l2_of_matvec(W, x):
    inputs = {"W": W, "x": x}
    print("W =", W, f"{x}", repr(W), W.tolist(), W.sum().item(), isinstance(W, torch.Tensor))
    shapes = {k: getattr(inputs[k], "shape") for k in NAMES}
    with torch.no_grad():
        q = W.detach().requires_grad_(False) @ x
    dq = 2.0 * q
    data = getattr(W, "data", W)
    return float(q @ q), (torch.outer(dq, x) + 0 * data, W.T @ dq)
'''


def test_honest_idioms_are_not_flagged(tmp_path):
    (tmp_path / "graphs.py").write_text(HONEST)
    assert scan_submission(tmp_path, ["graphs.py"], "l2_of_matvec") == []


def test_the_reference_the_templates_and_the_real_engines_are_not_flagged(tmp_path):
    from real_engines import CREATION_ORDER, ITERATIVE_DFS, NN_OTHER_STYLE, RECURSIVE_BIG_STACK
    for folder in (ROOT / "reference", ROOT / "student_template"):
        for assignment in ("backprop_ninja", "graphs", "micrograd"):
            for ex in exercises(assignment):
                assert scan_submission(folder, ex.required_files, ex.entry, ex.blocked_imports) == [], (folder, ex.id)
    for engine in (CREATION_ORDER, ITERATIVE_DFS, RECURSIVE_BIG_STACK):
        sub = tmp_path / "engine"
        shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd", dirs_exist_ok=True)
        (sub / "micrograd" / "engine.py").write_text(engine)
        (sub / "micrograd" / "nn.py").write_text(NN_OTHER_STYLE)
        for ex in exercises("micrograd"):
            assert scan_submission(sub, ex.required_files, ex.entry, ex.blocked_imports) == [], ex.id


# -- through the command line, under each mechanism ------------------------------------------------------------

def _cli(mech, sub: Path, assignment: str, tmp_path: Path, fmt: str = "json", secret: str = "integrity-secret") -> str:
    out = tmp_path / f"result-{assignment}-{fmt}.txt"
    env = {**os.environ, **mech.env, "AUTOGRADER_SECRET": secret}
    names = [arg for name in assignment.split("+") for arg in ("-a", name)]
    done = subprocess.run([mech.python, "-m", "autograder", "grade", str(sub), *names, "--format", fmt,
                           "-o", str(out)], env=env, capture_output=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-3000:]
    return out.read_text()


def _exercises(text: str) -> dict:
    return {ex["id"]: ex for ex in json.loads(text)["exercises"]}


def _printing(source: str) -> str:
    """Every one-line `return X` of a function or method gets a print of X before it (tensors, tuples and dicts
    of them, Values: print, an f-string and repr), the way a student checks their work."""
    import ast
    lines = source.split("\n")
    returns = sorted((node.lineno, node.col_offset) for node in ast.walk(ast.parse(source))
                     if isinstance(node, ast.Return) and node.value is not None and node.lineno == node.end_lineno)
    for lineno, col in reversed(returns):
        line = lines[lineno - 1]
        if not line[:col].strip() == "":  # `if x: return y` on one line: left as it is
            continue
        expr = line[col + len("return "):].split("  #")[0].rstrip()
        shown = f"f'{{({expr})!r:.40}}'" if "'" not in expr and '"' not in expr else f"repr({expr})[:40]"
        lines.insert(lineno - 1, f"{line[:col]}print('returning', {expr}, {shown})")
    return "\n".join(lines)


def test_printing_tensors_keeps_full_marks(mechanism, tmp_path):
    sub = tmp_path / "printing"
    sub.mkdir()
    for name in ("backprop_ninja", "graphs"):
        (sub / f"{name}.py").write_text(_printing((ROOT / "reference" / f"{name}.py").read_text()))
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd")
    nn = sub / "micrograd" / "nn.py"
    nn.write_text(_printing(nn.read_text()))
    engine = sub / "micrograd" / "engine.py"
    engine.write_text(engine.read_text().replace("    def backward(self):\n",
                                                 "    def backward(self):\n        print('backward from', self)\n", 1))
    for assignment in ("backprop_ninja", "graphs", "micrograd"):
        for ex_id, ex in _exercises(_cli(mechanism, sub, assignment, tmp_path)).items():
            assert ex["score"] == pytest.approx(ex["max_score"], abs=1e-5), \
                (ex_id, [(c["name"], c["verdict"], c["message"]) for c in ex["checks"] if not c["passed"]])


LABELS = '''

class MaxGate:
    def forward(self, x, y):
        self.x, self.y = x, y
        return max(x, y)

    def backward(self, dout):
        x = torch.tensor(self.x, requires_grad=True)
        y = torch.tensor(self.y, requires_grad=True)
        dx, dy = torch.autograd.grad(torch.maximum(x, y), (x, y), torch.tensor(dout))
        return float(dx), float(dy)


class SigmoidGate:
    def forward(self, x):
        self.s = 1.0 / (1.0 + math.exp(-x))
        return self.s

    def backward(self, dout):
        derivative = getattr(self, "_".join(["local", "derivative"]) if dout > 1e9 else str(dout))
        return derivative * dout
'''


def test_each_kind_of_finding_has_its_own_label(mechanism, tmp_path):
    """issue 21: a thread left running, a process, native code are not "autograd"."""
    source = (ROOT / "reference" / "graphs.py").read_text()
    source = re.sub(r"class MaxGate:.*?(?=\nclass SigmoidGate)", "", source, flags=re.S)
    source = re.sub(r"class SigmoidGate:.*?(?=\ndef simple_graph)", "", source, flags=re.S)
    source = source.replace("\n\ndef simple_graph", LABELS + "\n\ndef simple_graph", 1)
    source = with_function(source, "simple_graph", """
        def simple_graph(x, y, z):
            import subprocess
            subprocess.run(["true"])
            return (x + y) * z, (z, z, x + y)
        """)
    source = with_function(source, "sigmoid_neuron", """
        def sigmoid_neuron(w, x):
            import ctypes
            f = 1.0 / (1.0 + math.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
            d = (1 - f) * f
            return f, ([d * x[0], d * x[1], d], [d * w[0], d * w[1]])
        """)
    source = with_function(source, "l2_of_matvec", """
        def l2_of_matvec(W, x):
            import threading, time
            threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
            q = W @ x
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
        """)
    sub = tmp_path / "labels"
    sub.mkdir()
    (sub / "graphs.py").write_text(source)
    result = _exercises(_cli(mechanism, sub, "graphs", tmp_path))
    expected = {"graphs.MaxGate": "autograd_used", "graphs.SigmoidGate": "unreadable_code",
                "graphs.simple_graph": "new_process", "graphs.sigmoid_neuron": "native_code",
                "graphs.l2_of_matvec": "thread_left_running"}
    for ex_id, mistake in expected.items():
        checks = result[ex_id]["checks"]
        assert result[ex_id]["score"] == 0 and {c["mistake"] for c in checks} == {mistake}, \
            (ex_id, [(c["mistake"], c["message"]) for c in checks])
        said = " ".join(c["message"] + " " + c["hint"] for c in checks)
        assert ("autograd" in said) == (mistake == "autograd_used"), (ex_id, said)
    assert result["graphs.AddGate"]["score"] == result["graphs.AddGate"]["max_score"]
    assert result["graphs.MultiplyGate"]["score"] == result["graphs.MultiplyGate"]["max_score"]


def _public_fingerprints() -> dict:
    cases = {ex.entry: ex.cases(Seeds(hidden=False)) for ex in exercises("graphs")}
    return {
        "MaxGate": sorted({round(v, 6) for c in cases["MaxGate"] for v in c.inputs["x"] + c.inputs["tie"]}),
        "simple_graph": sorted({round(v, 6) for c in cases["simple_graph"] for v in c.inputs["x"]}),
        "sigmoid_neuron": sorted({round(w[0], 6) for c in cases["sigmoid_neuron"] for w in c.inputs["w"]}),
        "l2_of_matvec": sorted({round(float(c.inputs["W"].sum()), 6) for c in cases["l2_of_matvec"]}),
    }


def test_hidden_cases_speak_a_closed_vocabulary(mechanism, tmp_path):
    """Right on every public case (whose inputs are public), and on a hidden case: an exit message, an
    exception class and message, printed text, all carrying the inputs; a constant answer (its maxdiff gives
    the truth back). None of it reaches what a student sees."""
    fp = _public_fingerprints()
    source = (ROOT / "reference" / "graphs.py").read_text()
    source = source.replace("import torch\n", f"import torch\nimport sys\nPUBLIC = {fp!r}\n", 1)
    source = source.replace('''        if self.x >= self.y:
            return dout, 0.0''', '''        if round(self.x, 6) not in PUBLIC["MaxGate"]:
            print("LEAK%d" % int(abs(self.x) * 1e6))
            raise ValueError("LEAK%d" % int(abs(self.x) * 1e6))
        if self.x >= self.y:
            return dout, 0.0''', 1)
    source = with_function(source, "simple_graph", """
        def simple_graph(x, y, z):
            if round(x, 6) not in PUBLIC["simple_graph"]:
                sys.exit("LEAK%d" % int(abs(x) * 1e6))
            return (x + y) * z, (z, z, x + y)
        """)
    source = with_function(source, "sigmoid_neuron", """
        def sigmoid_neuron(w, x):
            if round(w[0], 6) not in PUBLIC["sigmoid_neuron"]:
                raise type("LEAK%d" % int(abs(w[0]) * 1e6), (Exception,), {})("LEAK%d" % int(abs(x[0]) * 1e6))
            f = 1.0 / (1.0 + math.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
            d = (1 - f) * f
            return f, ([d * x[0], d * x[1], d], [d * w[0], d * w[1]])
        """)
    source = with_function(source, "l2_of_matvec", """
        def l2_of_matvec(W, x):
            q = W @ x
            if round(float(W.sum()), 6) not in PUBLIC["l2_of_matvec"]:
                return 1000.0, (torch.full_like(W, 1000.0), torch.full_like(x, 1000.0))
            return float(q @ q), (torch.outer(2 * q, x), W.T @ (2 * q))
        """)
    sub = tmp_path / "leaky"
    sub.mkdir()
    (sub / "graphs.py").write_text(source)
    instructor = json.loads(_cli(mechanism, sub, "graphs", tmp_path))
    by_id = {ex["id"]: ex for ex in instructor["exercises"]}
    for entry in ("MaxGate", "simple_graph", "sigmoid_neuron", "l2_of_matvec"):
        ex = by_id[f"graphs.{entry}"]
        assert 0 < ex["score"] < ex["max_score"], (entry, ex["score"])  # right on public cases, wrong on hidden
        assert all(c["case_label"].startswith("hidden") for c in ex["checks"] if not c["passed"]), entry
    hidden_maxdiffs = {f"{c['maxdiff']:.2e}" for c in by_id["graphs.l2_of_matvec"]["checks"]
                       if c["maxdiff"] not in (None, 0)}
    assert hidden_maxdiffs  # the instructor's JSON keeps them
    seen = {"json": json.dumps({k: v for k, v in instructor.items()}, default=str)}
    for fmt in ("gradescope", "markdown", "junit"):
        seen[fmt] = _cli(mechanism, sub, "graphs", tmp_path, fmt)
    seen["terminal"] = _cli_terminal(mechanism, sub, tmp_path)
    for fmt, text in seen.items():
        assert "LEAK" not in text and "Leak" not in text, (fmt, text[text.find("LEAK") - 300:][:600])
        if fmt != "json":
            assert not any(m in text for m in hidden_maxdiffs), (fmt, hidden_maxdiffs)
    messages = [c["message"] for ex in instructor["exercises"] for c in ex["checks"] if not c["passed"]]
    assert any("raised ValueError" in m for m in messages), messages  # a builtin's name is in the vocabulary
    assert any("raised an exception" in m for m in messages), messages  # a class the student named is not
    assert any("exited" in m for m in messages), messages


def _cli_terminal(mech, sub: Path, tmp_path: Path) -> str:
    """What `grade` prints in a terminal (the table and notes), hidden cases included."""
    env = {**os.environ, **mech.env, "AUTOGRADER_SECRET": "integrity-secret", "COLUMNS": "200"}
    done = subprocess.run([mech.python, "-m", "autograder", "grade", str(sub), "-a", "graphs"], env=env,
                          capture_output=True, timeout=600, cwd=ROOT)
    return (done.stdout + done.stderr).decode(errors="replace")


# -- doing nothing earns nothing -----------------------------------------------------------------------------

GRADIENT_NAMES = ["logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
                  "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2",
                  "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C"]
LAZY = {"zeros": "torch.zeros_like", "constant": "(lambda t: torch.full_like(t, 0.5))", "copy": "(lambda t: t.clone())"}


def _lazy_ninja(kind: str) -> str:
    f = LAZY[kind]
    src = (ROOT / "reference" / "backprop_ninja.py").read_text()
    src = with_function(src, "manual_backward", "def manual_backward(ctx):\n    return dict("
                        + ", ".join(f"{k}={f}(ctx.{k})" for k in GRADIENT_NAMES) + ")\n")
    upstream = kind == "copy"  # a copy of the upstream gradient where there is one
    src = with_function(src, "cross_entropy_backward", f"def cross_entropy_backward(logits, Yb):\n    return {f}(logits)\n")
    src = with_function(src, "batchnorm_backward", "def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):\n"
                        f"    return {f}({'dhpreact' if upstream else 'bnraw'})\n")
    src = with_function(src, "tanh_backward", f"def tanh_backward(h, dh, hpreact=None):\n    return {f}({'dh' if upstream else 'h'})\n")
    src = with_function(src, "embedding_backward", f"def embedding_backward(Xb, demb, C):\n    return {f}(C)\n")
    src = with_function(src, "forward_backward", "def forward_backward(params, Xb, Yb):\n"
                        f"    return torch.tensor(3.3), {{k: {f}(v) for k, v in params.items()}}\n")
    src = with_function(src, "train", "def train(params, X, Y, steps, lr, batch_size=32, seed=0):\n    return [3.3] * steps\n")
    return src


def _lazy_graphs(kind: str) -> str:
    value = {"zeros": "0.0", "constant": "0.5", "copy": "dout"}[kind]
    src = (ROOT / "reference" / "graphs.py").read_text()
    src = re.sub(r"(def backward\(self, dout\):\n        \"\"\"Return \(dx, dy\)\.[^\n]*\"\"\"\n).*?(?=\n\n\n)",
                 lambda m: m.group(1) + f"        return {value}, {value}", src, flags=re.S)
    src = re.sub(r"(def backward\(self, dout\):\n        \"\"\"Return dx\.\"\"\"\n).*?(?=\n\n\n)",
                 lambda m: m.group(1) + f"        return {value}", src, flags=re.S)
    g = {"zeros": "0.0", "constant": "0.5", "copy": None}[kind]
    src = with_function(src, "simple_graph", "def simple_graph(x, y, z):\n"
                        f"    return (x + y) * z, {('(' + g + ', ' + g + ', ' + g + ')') if g else '(x, y, z)'}\n")
    src = with_function(src, "sigmoid_neuron", "def sigmoid_neuron(w, x):\n"
                        "    f = 1.0 / (1.0 + math.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))\n"
                        f"    return f, {('([' + g + '] * 3, [' + g + '] * 2)') if g else '(list(w), list(x))'}\n")
    like = {"zeros": "torch.zeros_like({})", "constant": "torch.full_like({}, 0.5)", "copy": "{}.clone()"}[kind]
    src = with_function(src, "l2_of_matvec", "def l2_of_matvec(W, x):\n    q = W @ x\n"
                        f"    return float(q @ q), ({like.format('W')}, {like.format('x')})\n")
    return src


def _lazy_micrograd(sub: Path, kind: str) -> None:
    """The reference engine and nn with every solution block replaced: the forward passes are right, and each
    _backward does nothing (zeros) or sets a constant / copies the upstream gradient."""
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd")
    body = {"zeros": "pass", "constant": "self.grad = 0.5", "copy": "self.grad += out.grad"}[kind]

    def stub(match):
        indent, block = match.group(1), match.group(2)
        if "out.grad" in block:
            return f"{indent}{body}\n"
        if "topo" in block or "build" in block:  # backward()
            return f"{indent}{'pass' if kind == 'zeros' else 'self.grad = 1.0'}\n"
        return f"{indent}return {'[]' if 'parameters' in block or 'for p in' in block else 'Value(0.5)'}\n"
    for name in ("engine.py", "nn.py"):
        path = sub / "micrograd" / name
        path.write_text(re.sub(r"(?ms)^( *)### BEGIN SOLUTION[^\n]*\n(.*?)^ *### END SOLUTION[^\n]*\n", stub,
                               path.read_text()))


@pytest.mark.parametrize("kind", list(LAZY))
def test_doing_nothing_earns_nothing(mechanism, tmp_path, kind):
    """Zeros, a constant, or a copy of an input or of the upstream gradient, in every exercise of every
    assignment: nothing earns a point except where that IS the answer (the add gate passes its upstream
    gradient through unchanged)."""
    sub = tmp_path / kind
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text(_lazy_ninja(kind))
    (sub / "graphs.py").write_text(_lazy_graphs(kind))
    _lazy_micrograd(sub, kind)
    for ex_id, ex in _exercises(_cli(mechanism, sub, "backprop_ninja+graphs+micrograd", tmp_path)).items():
        earned = [(c["name"], c["verdict"], c["points"]) for c in ex["checks"] if c["points"]]
        if kind == "copy" and ex_id == "graphs.AddGate":
            assert ex["score"] == ex["max_score"], earned
        elif kind == "copy" and ex_id == "micrograd.ops":
            # `self.grad += out.grad` is the backward of a + c, c + a, and of relu where the input is > 0
            assert {n for n, *_ in earned} <= {"a + c", "c + a", "a.relu()"}, earned
        elif kind != "zeros" and ex_id == "micrograd.expressions":
            # this variant's backward() seeds out.grad = 1: the output's gradient is right
            assert {n for n, *_ in earned} <= {"output"}, earned
        else:
            assert ex["score"] == 0, (kind, ex_id, earned)


# -- names a student controls are plain text ---------------------------------------------------------------

HOSTILE_NAME = '# Heading <img src=x onerror=alert(1)> [click](javascript:alert(1)) ![i](http://x/i.png)'


def test_a_gradescope_upload_s_folder_names_are_plain_text(tmp_path):
    from autograder.integrations.gradescope import arrange_upload, finalize
    upload = tmp_path / "upload"
    (upload / HOSTILE_NAME).mkdir(parents=True)
    shutil.copy(ROOT / "student_template" / "micrograd" / "engine.py", upload / HOSTILE_NAME / "engine.py")
    shutil.copy(ROOT / "student_template" / "micrograd" / "nn.py", upload / HOSTILE_NAME / "nn.py")
    notes = arrange_upload(upload, tmp_path / "target", ["micrograd"])
    assert any("Heading" in n for n in notes), notes
    private = tmp_path / "private"
    private.mkdir()
    (private / "arrange-notes.txt").write_text("\n".join(notes))
    (private / "results.json").write_text(json.dumps({"score": 0, "tests": [], "output": "", "output_format": "md"}))
    output = json.loads(finalize(private, 0).read_text())["output"]
    assert "<img" not in output and "](javascript:" not in output and "![" not in output, output
    assert not re.search(r"(?m)^\s*#", output), output
    (private / "results.json").unlink()  # the failed-run page escapes too
    (private / "stderr.txt").write_text(HOSTILE_NAME)
    output = json.loads(finalize(private, 1).read_text())["output"]
    assert "<img" not in output and "](javascript:" not in output and not re.search(r"(?m)^\s*#", output), output


def test_student_text_is_plain_in_every_renderer():
    from autograder.frontends import formats
    from autograder.core.result import CheckResult, ExerciseResult, GradeResult
    check = CheckResult(name="dx", verdict="error", local_verdict=None, maxdiff=None, shape=None, expected_shape=[2],
                        mistake=None, message=HOSTILE_NAME, hint="", max_points=1, cases=[], case_label="public case 1")
    result = GradeResult(submission=HOSTILE_NAME, exercises=[ExerciseResult(
        id="graphs.AddGate", title="t", max_score=1, where=HOSTILE_NAME, checks=[check], first_wrong_step="dx",
        message=HOSTILE_NAME, output=HOSTILE_NAME, seconds=0.0)], hidden=False, sandbox="test", seconds=0.0)
    gradescope = formats.gradescope_dict(result)
    texts = {"markdown": formats.summary_markdown(result), "gradescope": gradescope["output"] + "".join(
        t["output"] for t in gradescope["tests"])}
    for name, text in texts.items():
        # a fenced code block (the printed output) is literal text: what is outside it must not be markup
        text = re.sub(r"(?ms)^(`{3,})\n.*?^\1$", "", text)
        assert "<img" not in text and "](javascript:" not in text and "![" not in text, (name, text)
        assert not re.search(r"(?m)^\s*# Heading", text), (name, text)


def test_a_hidden_comparison_keeps_only_the_closed_vocabulary():
    from autograder.core.compare import Comparison
    from autograder.core.pipeline import HIDDEN_REDACTED, _closed
    cases = [(Comparison("dx", "error", message="raised Leak123 at line 4: `x = 123`"), "raised an exception"),
             (Comparison("dx", "error", message="not reached: ValueError at line 9"), "raised ValueError"),
             (Comparison("dx", "wrong", message="5 of 8 elements differ (maxdiff 123)", hint="first at index (3,): got 123",
                         mistake=None), "wrong"),
             (Comparison("dx", "wrong", message="off", hint="the answer is a constant multiple (off by a factor of 123.4)",
                         mistake="scale"), "wrong"),
             (Comparison("dx", "timeout", message="timed out after 12.3 s in f at line 7"), "timed out (time limit)")]
    for comparison, text in cases:
        _closed(comparison)
        assert comparison.message == f"{text} {HIDDEN_REDACTED}", comparison.message
        assert "123" not in comparison.hint and "Leak" not in comparison.message, comparison
    assert cases[3][0].hint == "the answer is a constant multiple of the true gradient"  # the catalogue's own text
