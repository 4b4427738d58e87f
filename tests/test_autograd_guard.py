"""The autograd guard (guard.py in the student's process, integrity/scan.py in the grader), end to end.

Every hostile submission is the reference solution with one function replaced by an attack that returns
the right answer through autograd or PyTorch's backward kernels; it is graded through the real pipeline on
the real assignment and must score 0 on that exercise with `autograd_used` and its route named. Each attack
is graded twice: as submitted (both layers), and with the static scan switched off, which proves the
guard in the student's process catches it on its own. And correct work written the lecture's ways keeps
full marks: a defence that refuses correct work is a defect.
"""
from __future__ import annotations

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
from autograder.integrity.scan import autograd_in_source

ROOT = Path(__file__).resolve().parent.parent
NINJA = {ex.entry: ex for ex in exercises("backprop_ninja")}
GRAPHS = {ex.entry: ex for ex in exercises("graphs")}
MICROGRAD = {ex.id: ex for ex in exercises("micrograd")}


def with_function(source: str, name: str, new: str) -> str:
    """`source` with the top-level function `name` replaced by `new` (a whole `def`, plus helpers)."""
    pattern = re.compile(rf"^def {name}\(.*?(?=^(?:def |@|# --|if __name__))", re.S | re.M)
    assert pattern.search(source), name
    return pattern.sub(lambda _: textwrap.dedent(new).strip() + "\n\n\n", source, count=1)


def submission(tmp_path: Path, assignment: str, function: str, attack: str) -> Path:
    sub = tmp_path / "sub"
    if assignment == "micrograd":
        shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd")
        path = sub / "micrograd" / "engine.py"
        path.write_text(textwrap.dedent(attack).lstrip() + path.read_text())
        return sub
    sub.mkdir()
    source = (ROOT / "reference" / f"{assignment}.py").read_text()
    (sub / f"{assignment}.py").write_text(with_function(source, function, attack) if function else source)
    return sub


def grade_one(runner, sub: Path, exercise, monkeypatch=None, static: bool = True):
    if not static:
        monkeypatch.setattr(pipeline, "scan_submission", lambda *args, **kwargs: [])
    result = pipeline.grade(sub, [exercise], hidden=False, runner=runner, seeds=Seeds(hidden=False))
    return result.exercises[0]


# Routes that are not autograd have their own category and wording (only autograd says "autograd").
CATEGORY = {"subprocess_without_guard": "new_process", "ctypes_into_native_code": "native_code",
            "gc_object_walk": "unreadable_code"}


def assert_caught(result, route: str, category: str = "autograd_used") -> None:
    assert result.score == 0, (result.score, [(c.name, c.verdict, c.message) for c in result.checks])
    assert result.checks and all(c.mistake == category for c in result.checks), \
        [(c.name, c.mistake, c.message) for c in result.checks]
    messages = " | ".join(c.message for c in result.checks)
    assert any(r in messages for r in route.split("|")), messages


# -- the attacks: (id, exercise entry, replacement function, the route the message must name) ----------------
# Each returns the right gradient (where the route allows) so that only the guard stands between it and
# full marks.

HOSTILE = [
    ("grad_mode_set_grad_enabled", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            torch.autograd.grad_mode.set_grad_enabled(True)
            y = torch.tanh(x)
            torch.autograd.grad_mode.set_grad_enabled(False)
            return y.grad_fn(dh)
        """, "set_grad_enabled"),
    ("grad_mode_context_manager", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            with torch.autograd.grad_mode.set_grad_enabled(True):
                y = torch.tanh(x)
            return y.grad_fn(dh)
        """, "set_grad_enabled"),
    ("enable_grad", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            with torch.enable_grad():
                y = torch.tanh(x)
            return y.grad_fn(dh)
        """, "enable_grad"),
    ("inference_mode_false", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            with torch.inference_mode(False):
                y = torch.tanh(x)
            return y.grad_fn(dh)
        """, "inference_mode"),
    ("c_set_grad_enabled_then_grad_fn_by_hand", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            torch._C._set_grad_enabled(True)
            y = torch.tanh(x) * 1.0
            torch._C._set_grad_enabled(False)
            node = y.grad_fn.next_functions[0][0]
            return node(dh)
        """, "_set_grad_enabled"),
    ("execution_engine_run_backward", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            engine = torch.autograd.variable.Variable._execution_engine
            return engine.run_backward((torch.tanh(x),), (dh,), False, False, (x,), False, False)[0]
        """, "_execution_engine"),
    ("new_imperative_engine", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).detach().requires_grad_()
            engine = torch._C._ImperativeEngine()
            return engine.run_backward((torch.tanh(x),), (dh,), False, False, (x,), False, False)[0]
        """, "_ImperativeEngine"),
    ("aten_tanh_backward", "tanh_backward", """
        def tanh_backward(h, dh):
            return torch.ops.aten.tanh_backward(dh, h)
        """, "tanh_backward"),
    ("aten_sigmoid_and_threshold_backward", "tanh_backward", """
        def tanh_backward(h, dh):
            s = torch.ops.aten.sigmoid_backward(dh, h)
            return torch.ops.aten.threshold_backward(s, h, -10.0)
        """, "_backward"),
    ("log_softmax_backward_data", "cross_entropy_backward", """
        def cross_entropy_backward(logits, Yb):
            n = logits.shape[0]
            grad = torch.zeros_like(logits)
            grad[range(n), Yb] = -1.0 / n
            return torch._log_softmax_backward_data(grad, torch.log_softmax(logits, 1), 1, logits.dtype)
        """, "_log_softmax_backward_data"),
    ("softmax_backward_data", "cross_entropy_backward", """
        def cross_entropy_backward(logits, Yb):
            n = logits.shape[0]
            probs = torch.softmax(logits, 1)
            grad = torch.zeros_like(logits)
            grad[range(n), Yb] = -1.0 / n / probs[range(n), Yb]
            return torch.ops.aten._softmax_backward_data(grad, probs, 1, logits.dtype)
        """, "_softmax_backward_data"),
    ("embedding_dense_backward", "embedding_backward", """
        def embedding_backward(Xb, demb, num_embeddings):
            return torch.ops.aten.embedding_dense_backward(demb, Xb, num_embeddings, -1, False)
        """, "embedding_dense_backward"),
    ("native_batch_norm_backward", "batchnorm_backward", """
        def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
            n = dhpreact.shape[0]
            x = bnraw / bnvar_inv
            out = torch.ops.aten.native_batch_norm_backward(
                dhpreact, x, bngain.view(-1), None, None, x.mean(0), bnvar_inv.view(-1), True, 1e-5,
                [True, False, False])
            return out[0]
        """, "native_batch_norm_backward"),
    ("torch_func_grad", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h)
            return torch.func.vjp(torch.tanh, x)[1](dh)[0]
        """, "torch.func"),
    ("functorch_import", "tanh_backward", """
        def tanh_backward(h, dh):
            import functorch
            return functorch.vjp(torch.tanh, torch.atanh(h))[1](dh)[0]
        """, "functorch"),
    ("forward_ad", "tanh_backward", """
        def tanh_backward(h, dh):
            import torch.autograd.forward_ad as fwAD
            with fwAD.dual_level():
                y = torch.tanh(fwAD.make_dual(torch.atanh(h), dh))
                return fwAD.unpack_dual(y).tangent
        """, "forward"),
    ("thread", "tanh_backward", """
        def tanh_backward(h, dh):
            import threading
            out = []
            def work():  # a new thread would start with grad mode on and no hooks: it starts guarded
                x = torch.atanh(h).requires_grad_()
                out.append(torch.autograd.grad(torch.tanh(x), x, dh)[0])
            t = threading.Thread(target=work)
            t.start()
            t.join()
            return out[0]
        """, "autograd"),
    ("raw_thread", "tanh_backward", """
        def tanh_backward(h, dh):
            import _thread, time
            out = []
            def work():
                with torch.enable_grad():
                    x = torch.atanh(h).requires_grad_()
                    y = torch.tanh(x)
                    out.append(y.grad_fn(dh))
            _thread.start_new_thread(work, ())
            time.sleep(0.5)
            return out[0]
        """, "enable_grad"),
    ("thread_pool", "tanh_backward", """
        def tanh_backward(h, dh):
            from concurrent.futures import ThreadPoolExecutor
            def work():
                torch._C._set_grad_enabled(True)
                x = torch.atanh(h).requires_grad_()
                y = torch.tanh(x)
                return y.grad_fn(dh)
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(work).result()
        """, "_set_grad_enabled"),
    ("helper_function", "tanh_backward", """
        def _local_derivative(h, dh):
            return torch.ops.aten.tanh_backward(dh, h)


        def tanh_backward(h, dh):
            return _local_derivative(h, dh)
        """, "tanh_backward"),
    ("getattr_built_string", "tanh_backward", """
        def tanh_backward(h, dh):
            ag = getattr(torch, "auto" + "grad")
            x = torch.atanh(h).requires_grad_()
            return ag.grad(torch.tanh(x), x, dh)[0]
        """, "autograd"),
    ("importlib_built_string", "tanh_backward", """
        def tanh_backward(h, dh):
            import importlib
            aten = importlib.import_module("torch").ops.aten
            return getattr(aten, "tanh_" + "back" + "ward")(dh, h)
        """, "tanh_backward"),
    ("dunder_import", "tanh_backward", """
        def tanh_backward(h, dh):
            name = "".join(["tanh", "_", "backward"])
            return getattr(__import__("torch").ops.aten, name)(dh, h)
        """, "tanh_backward"),
    ("saved_tensor_hooks_switched_off", "tanh_backward", """
        def tanh_backward(h, dh):
            torch._C._autograd._pop_saved_tensors_default_hooks()
            x = torch.atanh(h).requires_grad_()
            with torch.enable_grad():
                return torch.tanh(x).grad_fn(dh)
        """, "_pop_saved_tensors_default_hooks"),
    ("backward_kernel_library_destroyed", "tanh_backward", """
        def tanh_backward(h, dh):
            import sys
            for library in sys.modules["autograder.runtime.guard"]._kernels:
                library._destroy()
            return torch.ops.aten.tanh_backward(dh, h)
        """, "_destroy|_kernels|backward kernels restored"),
    ("guard_record_erased", "tanh_backward", """
        def tanh_backward(h, dh):
            import sys
            guard = sys.modules["autograder" + ".runtime.guard"]
            try:
                torch.ops.aten.tanh_backward(dh, h)
            except BaseException:
                pass
            guard._autograd_calls.clear()
            torch._C._set_grad_enabled.__closure__[0].cell_contents(True)  # the original switch
            return (1.0 - h**2) * dh
        """, "grad mode left on|autograder.runtime.guard"),
    ("subprocess_without_guard", "tanh_backward", """
        def tanh_backward(h, dh):
            import subprocess, sys
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            return (1.0 - h**2) * dh
        """, "subprocess"),
    ("ctypes_into_native_code", "tanh_backward", """
        def tanh_backward(h, dh):
            import ctypes
            ctypes.CDLL(None)
            return (1.0 - h**2) * dh
        """, "ctypes"),
    ("gc_object_walk", "tanh_backward", """
        def tanh_backward(h, dh):
            import gc
            gc.get_objects()
            return (1.0 - h**2) * dh
        """, "gc"),
    ("tensor_backward", "tanh_backward", """
        def tanh_backward(h, dh):
            x = torch.atanh(h).requires_grad_()
            torch.tanh(x).backward(dh)
            return x.grad
        """, "backward"),
]


@pytest.mark.parametrize("static", [True, False], ids=["both_layers", "guard_alone"])
@pytest.mark.parametrize("name,entry,attack,route", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_attack_scores_zero_with_autograd_used_and_its_route(runner, tmp_path, monkeypatch, name, entry, attack,
                                                            route, static):
    sub = submission(tmp_path, "backprop_ninja", entry, attack)
    result = grade_one(runner, sub, NINJA[entry], monkeypatch, static=static)
    assert_caught(result, route, CATEGORY.get(name, "autograd_used"))
    if CATEGORY.get(name, "autograd_used") != "autograd_used":
        assert all("autograd" not in c.message for c in result.checks), [c.message for c in result.checks]


@pytest.mark.parametrize("name,entry,attack,route", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_static_scan_names_each_route(tmp_path, name, entry, attack, route):
    sub = submission(tmp_path, "backprop_ninja", entry, attack)
    found = autograd_in_source(sub / "backprop_ninja.py", entry)
    assert found and any(r in f for f in found for r in route.split("|")), found


def test_a_cheat_in_one_function_costs_that_exercise_not_the_others(runner, tmp_path):
    sub = submission(tmp_path, "backprop_ninja", "embedding_backward", """
        def embedding_backward(Xb, demb, num_embeddings):
            return torch.ops.aten.embedding_dense_backward(demb, Xb, num_embeddings, -1, False)
        """)
    assert autograd_in_source(sub / "backprop_ninja.py", "tanh_backward") == []
    assert autograd_in_source(sub / "backprop_ninja.py", "embedding_backward")
    # forward_backward calls embedding_backward: it runs the cheat, so it is caught too
    assert autograd_in_source(sub / "backprop_ninja.py", "forward_backward")
    assert grade_one(runner, sub, NINJA["tanh_backward"]).score == NINJA["tanh_backward"].points


def test_sympy_diff_in_the_scalar_engine(runner, tmp_path):
    sub = submission(tmp_path, "micrograd", "", """
        import sympy
        _x = sympy.Symbol("x")
        TANH_DERIVATIVE = sympy.lambdify(_x, sympy.diff(sympy.tanh(_x), _x))
        """)
    assert_caught(grade_one(runner, sub, MICROGRAD["micrograd.ops"]), "sympy")


def test_sympy_diff_in_a_scalar_graph(runner, tmp_path):
    sub = submission(tmp_path, "graphs", "simple_graph", """
        def simple_graph(x, y, z):
            import sympy
            X, Y, Z = sympy.symbols("x y z")
            f = (X + Y) * Z
            at = {X: x, Y: y, Z: z}
            return float(f.subs(at)), [float(sympy.diff(f, v).subs(at)) for v in (X, Y, Z)]
        """)
    assert_caught(grade_one(runner, sub, GRAPHS["simple_graph"]), "sympy")


def test_guard_tampering_is_caught(runner, tmp_path, monkeypatch):
    """Grad mode switched on past every tripwire (the original switch, dug out of the tripwire's closure)
    and the guard's exception swallowed: the dispatch mode still records the graph being built, and the
    check after the case finds grad mode left on."""
    sub = submission(tmp_path, "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh):
            cells = torch._C._set_grad_enabled.__closure__
            switch = next(c.cell_contents for c in cells
                          if type(c.cell_contents).__name__ == "builtin_function_or_method")
            x = torch.atanh(h).requires_grad_()
            switch(True)
            try:
                y = torch.tanh(x)
            except BaseException:
                pass
            return (1.0 - h**2) * dh
        """)
    result = grade_one(runner, sub, NINJA["tanh_backward"], monkeypatch, static=False)
    assert_caught(result, "grad")


# -- correct work keeps its marks -----------------------------------------------------------------------------

LECTURE_IDIOMS = {
    "cross_entropy_backward": """
        def cross_entropy_backward(logits, Yb):
            n = logits.shape[0]
            dlogits = F.softmax(logits, 1)
            dlogits -= F.one_hot(Yb, num_classes=logits.shape[1])
            return dlogits / n
        """,
    "tanh_backward": """
        @torch.no_grad()
        def tanh_backward(h, dh):
            with torch.set_grad_enabled(False), torch.inference_mode():
                return torch.from_numpy((1.0 - h.numpy() ** 2)) * dh
        """,
    "embedding_backward": """
        def embedding_backward(Xb, demb, num_embeddings):
            dC = torch.zeros((num_embeddings, demb.shape[-1]), dtype=demb.dtype, requires_grad=False)
            for k in range(Xb.shape[0]):
                for j in range(Xb.shape[1]):
                    dC[Xb[k, j]] += demb[k, j]
            return dC.requires_grad_(False)
        """,
    "forward_backward": """
        def linear_backward(x, W, dout):  # a helper of the student's own, named like a backward kernel
            return dout @ W.T, x.T @ dout, dout.sum(0)


        def forward_backward(params, Xb, Yb):
            with torch.no_grad():
                C, W1, b1, W2, b2, bngain, bnbias = (params[k] for k in PARAMETER_NAMES)
                n = Xb.shape[0]
                emb = C[Xb]
                embcat = emb.view(n, -1)
                hprebn = embcat @ W1 + b1
                bnmean = hprebn.mean(0, keepdim=True)
                bnvar = hprebn.var(0, keepdim=True, unbiased=True)
                bnvar_inv = (bnvar + BN_EPS)**-0.5
                bnraw = (hprebn - bnmean) * bnvar_inv
                hpreact = bngain * bnraw + bnbias
                h = torch.tanh(hpreact)
                logits = h @ W2 + b2
                loss = F.cross_entropy(logits, Yb)
                dlogits = torch.softmax(logits, 1)
                dlogits[range(n), Yb] -= 1
                dlogits /= n
                dh, dW2, db2 = linear_backward(h, W2, dlogits)
                dhpreact = (1.0 - h**2) * dh
                dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
                dbnbias = dhpreact.sum(0, keepdim=True)
                dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0)
                                                    - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
                dembcat, dW1, db1 = linear_backward(embcat, W1, dhprebn)
                demb = dembcat.view(emb.shape)
                dC = torch.zeros_like(C)
                dC.index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))
            return loss, dict(C=dC, W1=dW1, b1=db1, W2=dW2, b2=db2, bngain=dbngain, bnbias=dbnbias)
        """,
    "train": """
        @torch.no_grad()
        def train(params, X, Y, steps, lr, batch_size=BATCH_SIZE, seed=0):
            g = torch.Generator().manual_seed(seed)
            for p in params.values():  # the lecture's habit: harmless with grad mode off
                p.requires_grad = True
            losses = []
            for _ in range(steps):
                ix = torch.randint(0, X.shape[0], (batch_size,), generator=g)
                with torch.no_grad():
                    loss, grads = forward_backward(params, X[ix], Y[ix])
                for name, p in params.items():
                    p.data += -lr * grads[name]
                losses.append(loss.item())
            return losses
        """,
}


def test_lecture_idioms_keep_full_marks(runner, tmp_path):
    source = (ROOT / "reference" / "backprop_ninja.py").read_text()
    source = source.replace("import torch\n", "import torch\nimport torch.nn.functional as F\n", 1)
    for entry, code in LECTURE_IDIOMS.items():
        source = with_function(source, entry, code)
    sub = tmp_path / "idioms"
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text(source)
    for entry in ("manual_backward", *LECTURE_IDIOMS):
        assert autograd_in_source(sub / "backprop_ninja.py", entry) == [], entry
    result = pipeline.grade(sub, list(NINJA.values()), hidden=False, runner=runner, seeds=Seeds(hidden=False))
    for ex in result.exercises:
        assert ex.score == ex.max_score, (ex.id, [(c.name, c.verdict, c.mistake, c.message) for c in ex.checks])


@pytest.mark.parametrize("assignment", ["backprop_ninja", "graphs", "micrograd"])
def test_reference_keeps_full_marks_on_public_and_hidden_cases(runner, assignment, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-autograd-guard")
    result = pipeline.grade(ROOT / "reference", exercises(assignment), hidden=True, runner=runner,
                            seeds=Seeds.for_credit())
    for ex in result.exercises:  # approx: points are rounded per check today (graphs.MaxGate 0.999999/1)
        assert ex.score == pytest.approx(ex.max_score, abs=1e-5), \
            (ex.id, [(c.name, c.verdict, c.mistake, c.message) for c in ex.checks])


def test_a_compiled_extension_in_the_submission_is_refused(runner, tmp_path):
    """Native code shipped with the submission would run past every Python-level guard."""
    sub = submission(tmp_path, "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh):
            import native_helper
            return (1.0 - h**2) * dh
        """)
    import _testcapi  # any compiled extension will do: a copy of it, in the submission, under another name
    suffix = _testcapi.__file__[_testcapi.__file__.index(".cpython"):] if ".cpython" in _testcapi.__file__ else ".so"
    shutil.copy(_testcapi.__file__, sub / f"native_helper{suffix}")
    result = grade_one(runner, sub, NINJA["tanh_backward"])
    assert_caught(result, "native_helper", "native_code")


def test_routes_carry_no_text_the_student_chose(runner, tmp_path, monkeypatch):
    """A route names what was reached, never text from the student's code, which could carry a hidden
    case's inputs into the feedback."""
    sub = submission(tmp_path, "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh):
            leak = "LEAK" + str(int(abs(h).sum() * 1000))
            for attempt in (lambda: __import__("sympy." + leak),
                            lambda: open("/proc/" + leak + "/mem"),
                            lambda: getattr(torch.autograd.variable.Variable._execution_engine, leak)):
                try:
                    attempt()
                except BaseException:
                    pass
            return (1.0 - h**2) * dh
        """)
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-autograd-guard")
    monkeypatch.setattr(pipeline, "scan_submission", lambda *args, **kwargs: [])
    result = pipeline.grade(sub, [NINJA["tanh_backward"]], hidden=True, runner=runner, seeds=Seeds.for_credit())
    ex = result.exercises[0]
    assert ex.score == 0 and {c.mistake for c in ex.checks} == {"autograd_used"}
    assert "LEAK" not in repr(result.to_dict()), [c.message for c in ex.checks]
    assert "sympy" in ex.checks[0].message or "mem" in ex.checks[0].message  # the routes, without the text


def test_native_threads_of_blas_are_no_route(runner, tmp_path):
    """numpy's and torch's BLAS start their own worker threads in the student's process: not a route."""
    sub = submission(tmp_path, "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh):
            import numpy as np
            a = np.random.rand(400, 400)
            np.linalg.inv(a @ a.T + np.eye(400))
            t = torch.randn(400, 400, dtype=torch.float64)
            torch.linalg.inv(t @ t.T + torch.eye(400, dtype=torch.float64))
            return (1.0 - h**2) * dh
        """)
    result = grade_one(runner, sub, NINJA["tanh_backward"])
    assert result.score == result.max_score, [(c.name, c.mistake, c.message) for c in result.checks]


def test_untouched_templates_are_not_flagged():
    for path in (ROOT / "student_template").rglob("*.py"):
        for entry in list(NINJA) + list(GRAPHS):
            assert autograd_in_source(path, entry) == [], (path, entry)


def test_prose_and_own_names_are_not_flagged(tmp_path):
    path = tmp_path / "graphs.py"
    path.write_text(textwrap.dedent('''
        """Backward pass by hand: no autograd, no torch.func."""
        import torch

        class Gate:
            def backward(self, dout):
                return dout

            def jacobian(self):  # a method of the student's own, named like an autograd function
                return 1.0

        def l2_of_matvec(W, x):
            gate = Gate()
            print("computing the backward pass without autograd")
            with torch.no_grad():
                q = W @ x
            dq = gate.backward(2 * q) * gate.jacobian()
            return float(q @ q), (torch.outer(dq, x), W.T @ dq)

        if __name__ == "__main__":
            W = torch.randn(2, 2, requires_grad=True)
            (W ** 2).sum().backward()
    '''))
    assert autograd_in_source(path, "l2_of_matvec") == []


def test_module_level_code_runs_for_every_exercise(tmp_path):
    path = tmp_path / "backprop_ninja.py"
    path.write_text(textwrap.dedent('''
        import torch

        def cheat(h, dh):
            return torch.ops.aten.tanh_backward(dh, h)

        def other(h, dh):
            return cheat(h, dh)

        HELPERS = {"cheat": cheat, "other": other}  # module level refers to both, and they to each other

        def tanh_backward(h, dh):
            return HELPERS["other"](h, dh)

        def embedding_backward(Xb, demb, num_embeddings):
            return torch.zeros(num_embeddings, demb.shape[-1]).index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))
    '''))
    assert any("tanh_backward" in f for f in autograd_in_source(path, "tanh_backward"))
    assert any("tanh_backward" in f for f in autograd_in_source(path, "embedding_backward"))


def test_the_scan_never_crashes_on_odd_source(tmp_path):
    path = tmp_path / "backprop_ninja.py"
    for source in ("def tanh_backward(:\n", "\x00\xff", "x = " + " + ".join(['"a"'] * 5000) + "\n",
                   "def tanh_backward(h, dh):\n    return " + "(" * 150 + "h" + ")" * 150 + "\n"):
        path.write_text(source, errors="replace")
        assert isinstance(autograd_in_source(path, "tanh_backward"), list)
    built = tmp_path / "built.py"
    built.write_text("import torch\nname = " + " + ".join(f'"{c}"' for c in "autograd") + "\n"
                     "def tanh_backward(h, dh):\n    return getattr(torch, name).grad(h, dh)\n")
    assert any("autograd" in f for f in autograd_in_source(built, "tanh_backward"))


def test_the_command_line_reports_the_route(tmp_path):
    """`autograder check`, as a student runs it: the exercise's line shows 0 and the route."""
    sub = submission(tmp_path, "backprop_ninja", "tanh_backward", """
        def tanh_backward(h, dh):
            return torch.ops.aten.tanh_backward(dh, h)
        """)
    done = subprocess.run([sys.executable, "-m", "autograder", "check", "-a", "backprop_ninja", str(sub)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    out = " ".join(done.stdout.split())
    assert "backprop_ninja.tanh_backward 0/" in out, out[-3000:]
    assert "uses autograd" in out and "tanh_backward (a PyTorch backward kernel)" in out, out[-3000:]
