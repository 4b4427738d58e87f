"""backprop_ninja, the student's side: drivers that call the student's functions on one case's inputs and
return plain results. Runs in the student's process: it imports nothing of the grader (no truth,
tolerance or hint lives here).

What the drivers record besides the answers, so that each function is graded on its own (the grader
judges the records, this module does not):
- an exception inside `manual_backward` or `forward_backward`: the gradients the function had already
  computed and where it raised (`raised`). Which local holds which gradient is read from the function's
  own `return dict(logprobs=dL_dlp, ...)` (its source's AST), so whatever the student named them; `d<name>`
  only where the return says nothing (a stub's return, or a mapping built some other way);
- `forward_backward`: the inputs and output of each helper it calls (`calls`), so a right step that was
  fed a wrong helper's output can be told from a wrong step;
- `train`: each step's parameters, batch, loss and gradients as its `forward_backward` saw and returned
  them, and the parameters at the end (`steps`, `final`), so the loop is judged on the student's own
  gradients.

The visual report's two drivers are here too (`drive_report_train`, `drive_sample`): they run the student's
code, so they belong to this side of the boundary; what the report draws of their results is `pictures.py`.
"""
from __future__ import annotations

import ast
import inspect
import linecache
import math
import textwrap
import time
from types import SimpleNamespace

import torch

PARAMETER_NAMES = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")


# Exercise 1's tensors in the order of the backward pass (the lecture's order): the report's order.
GRADIENT_NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
                  "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar",
                  "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C")

HELPERS = ("cross_entropy_backward", "tanh_backward", "batchnorm_backward", "embedding_backward")


def _passes_through(exc: BaseException) -> bool:
    """Exceptions that are the runtime's business, not the student's arithmetic: blocked imports, memory,
    recursion, a stub's NotImplementedError (the worker names them), and everything not an `Exception`
    (autograd tripwires, exit, interrupts)."""
    return not isinstance(exc, Exception) or type(exc).__name__ == "BlockedImport" \
        or isinstance(exc, (MemoryError, RecursionError, NotImplementedError))


def _raised_in(exc: BaseException, fn) -> tuple[dict, dict] | None:
    """The locals of `fn`'s frame when `exc` went through it, and where: ({name: value}, {error, line, code})."""
    try:  # the function itself, also under a decorator (`@torch.no_grad()` wraps it)
        codes = {getattr(fn, "__code__", None), getattr(inspect.unwrap(fn), "__code__", None)} - {None}
    except ValueError:
        codes = {getattr(fn, "__code__", None)} - {None}
    tb, hit = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            hit = tb  # the innermost: the student's own frame, not a decorator's
        tb = tb.tb_next
    if hit is None:
        return None
    text = str(exc)
    text = text[:300] + "..." if len(text) > 300 else text
    line = hit.tb_lineno
    source = linecache.getline(hit.tb_frame.f_code.co_filename, line).strip()[:200]
    where = {"error": f"{type(exc).__name__}: {text}" if text else type(exc).__name__, "line": line, "code": source,
             "assigned": sorted(k for k in hit.tb_frame.f_locals if isinstance(k, str))}
    return dict(hit.tb_frame.f_locals), where


def _dict_pairs(node, names=()) -> dict | None:
    """{key: local name} of a `dict(k=name, ...)` call, a `{"k": name, ...}` literal (other values skipped), or
    a list of as many names as `names` (the lecture's `grads = [dC, dW1, ...]`, in the contract's order)."""
    pairs = {}
    if isinstance(node, ast.List) and names and len(node.elts) == len(names) \
            and all(isinstance(e, ast.Name) for e in node.elts):
        return {name: e.id for name, e in zip(names, node.elts)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        for kw in node.keywords:
            if kw.arg is not None and isinstance(kw.value, ast.Name):
                pairs[kw.arg] = kw.value.id
        return pairs
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Name):
                pairs[key.value] = value.id
        return pairs
    return None


def return_mapping(fn, names) -> dict:
    """{contract name: the local the function returns under it}, read from the AST of `fn`'s own return
    statements (`return dict(logprobs=dL_dlp, ...)`, `return {"logprobs": dL_dlp}`, `return loss, grads` with
    `grads = dict(...)` assigned in the function). A key `dlogprobs` counts as `logprobs`. Empty where the
    source cannot be read (a notebook cell without a file, a built-in) or says nothing."""
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        tree = ast.parse(source)
    except (OSError, TypeError, ValueError, SyntaxError, IndentationError):
        return {}
    func = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        return {}
    own, stack = [], list(func.body)
    while stack:  # the function's own statements, not those of functions or classes defined inside it
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        own.append(node)
        stack.extend(ast.iter_child_nodes(node))
    assigned = {}
    for node in own:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            pairs = _dict_pairs(node.value, names)
            if pairs:
                assigned.setdefault(node.targets[0].id, {}).update(pairs)
    mapping: dict = {}
    for node in own:
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        for value in values:
            pairs = _dict_pairs(value, names)
            if pairs is None and isinstance(value, ast.Name):
                pairs = assigned.get(value.id)
            for key, local in (pairs or {}).items():
                name = key if key in names else key[1:] if key.startswith("d") and key[1:] in names else None
                if name is not None:
                    mapping.setdefault(name, local)
    return mapping


def rescued(fn, frame: dict, names) -> dict:
    """The gradients a function had computed when it raised, by contract name: the local its return maps
    to the name, else `d<name>`."""
    mapping = return_mapping(fn, names)
    out = {}
    for name in names:
        local = mapping.get(name)
        out[name] = frame.get(local) if local in frame else frame.get("d" + name)
    return out


def drive_manual_backward(module, inputs: dict) -> dict:
    """In the student's process: call manual_backward(ctx) and return its gradients by name."""
    ctx = SimpleNamespace(**inputs)
    fn = module.manual_backward
    try:
        grads = fn(ctx)
    except BaseException as exc:
        if _passes_through(exc):
            raise
        found = _raised_in(exc, fn)
        if found is None:
            raise
        frame, where = found
        # What was computed before the exception is graded; the rest is "not reached".
        grads = rescued(fn, frame, GRADIENT_NAMES)
        # The names the judge reads as "assigned before the exception" are the contract's, whatever the locals.
        where["assigned"] = sorted(set(where["assigned"]) | {"d" + n for n, v in grads.items() if v is not None})
        return {**grads, "raised": where}
    if not isinstance(grads, dict):
        raise TypeError(f"manual_backward must return a dict of gradients keyed by tensor name "
                        f"('logprobs', 'probs', ...), not a {type(grads).__name__}")
    # `dlogprobs` keys are forgiven: the contract's name is the tensor's.
    return {name: grads.get(name, grads.get("d" + name)) for name in GRADIENT_NAMES}


def drive_cross_entropy(module, inputs):
    return {"logits": module.cross_entropy_backward(inputs["logits"], inputs["Yb"])}


def drive_batchnorm(module, inputs):
    return {"hprebn": module.batchnorm_backward(inputs["dhpreact"], inputs["bngain"], inputs["bnraw"],
                                                inputs["bnvar_inv"])}


def drive_tanh(module, inputs):
    fn = module.tanh_backward
    try:
        accepts = "hpreact" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts:
        return {"hpreact": fn(inputs["h"], inputs["dh"], hpreact=inputs["hpreact"])}
    return {"hpreact": fn(inputs["h"], inputs["dh"])}


def drive_embedding(module, inputs):
    """`embedding_backward(Xb, demb, C)` (the template) or `(Xb, demb, num_embeddings)` (older ones)."""
    fn = module.embedding_backward
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    if "C" in params:
        out = fn(inputs["Xb"], inputs["demb"], C=inputs["C"]) if params.index("C") != 2 else \
            fn(inputs["Xb"], inputs["demb"], inputs["C"])
    else:
        out = fn(inputs["Xb"], inputs["demb"], inputs["num_embeddings"])
    return {"C": out}


def _snapshot(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _record_helpers(module, calls: dict) -> dict:
    """Replace the module's helpers by recording wrappers (the student's `forward_backward` looks them up
    as globals at call time). Returns the originals, to put back."""
    originals = {}
    for name in HELPERS:
        fn = getattr(module, name, None)
        if not callable(fn):
            continue
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def wrapper(*args, _fn=fn, _name=name, _signature=signature, **kwargs):
            out = _fn(*args, **kwargs)
            named = {}
            if _signature is not None:
                try:
                    named = dict(_signature.bind(*args, **kwargs).arguments)
                except TypeError:
                    named = {}
            calls[_name] = {"args": {k: _snapshot(v) for k, v in named.items() if isinstance(v, torch.Tensor)},
                            "out": _snapshot(out)}
            return out
        originals[name] = fn
        setattr(module, name, wrapper)
    return originals


def drive_forward_backward(module, inputs):
    calls: dict = {}
    originals = _record_helpers(module, calls)
    fn = module.forward_backward
    try:
        result = fn(inputs["params"], inputs["Xb"], inputs["Yb"])
    except BaseException as exc:
        if _passes_through(exc):
            raise
        found = _raised_in(exc, fn)
        if found is None:
            raise
        frame, where = found
        return {"loss": frame.get("loss"), **rescued(fn, frame, PARAMETER_NAMES), "calls": calls, "raised": where}
    finally:
        for name, original in originals.items():
            setattr(module, name, original)
    grads = _as_named(result[1]) if isinstance(result, tuple) and len(result) == 2 else None
    if grads is None:
        raise TypeError("forward_backward must return (loss, grads) with grads a dict keyed like params (or the "
                        "lecture's list [dC, dW1, db1, dW2, db2, dbngain, dbnbias])")
    return {"loss": result[0], **{name: grads.get(name) for name in PARAMETER_NAMES}, "calls": calls}


def _as_named(grads) -> dict | None:
    """Gradients keyed like params, from a dict (keys `W1` or `dW1`) or from the lecture's list in the order of
    PARAMETER_NAMES (`grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]`); None for anything else."""
    if isinstance(grads, dict):
        return {name: grads.get(name, grads.get("d" + name)) for name in PARAMETER_NAMES}
    if isinstance(grads, (list, tuple)) and len(grads) == len(PARAMETER_NAMES):
        return dict(zip(PARAMETER_NAMES, grads))
    return None


def drive_train(module, inputs):
    """Call train; record every call of the student's forward_backward (the parameters it was given, the
    batch, the loss and gradients it returned) and the parameters at the end."""
    params = inputs["params"]
    steps: list = []
    original = getattr(module, "forward_backward", None)

    def recording(p, Xb, Yb, *args, **kwargs):
        before = {k: _snapshot(v) for k, v in p.items()} if isinstance(p, dict) else {}
        result = original(p, Xb, Yb, *args, **kwargs)
        loss, grads = (result if isinstance(result, tuple) and len(result) == 2 else (None, None))
        if isinstance(grads, dict) and isinstance(p, dict) and any(grads.get(k, 0) is None for k in p):
            # A gradient forward_backward does not compute yet (`db1 = None`) costs forward_backward's own
            # check; train's loop is judged on zeros in its place rather than crashing on the None.
            grads = {k: (torch.zeros_like(p[k]) if v is None and isinstance(p.get(k), torch.Tensor) else v)
                     for k, v in grads.items()}
            result = (loss, grads)
        grads = _as_named(grads) or {}
        steps.append({"params": before, "Xb": _snapshot(Xb), "Yb": _snapshot(Yb), "loss": _snapshot(loss),
                      "grads": {k: _snapshot(v) for k, v in grads.items() if v is not None}})
        return result

    if callable(original):
        module.forward_backward = recording
    try:
        losses = module.train(params, inputs["X"], inputs["Y"], inputs["steps"], inputs["lr"],
                              batch_size=inputs["batch_size"], seed=inputs["seed"])
    finally:
        if callable(original):
            module.forward_backward = original
    return {"losses": [float(x) for x in losses] if isinstance(losses, (list, tuple)) else losses,
            "steps": steps, "final": {k: _snapshot(v) for k, v in params.items()}}

# -- the visual report: train with the student's `train`, then sample names ----------------------------------
# As the lecture's last cells did, in two runs one after the other, so that the loss curve comes back whatever
# sampling does: a diverged model (NaN logits, or a '.' whose probability underflowed to 0) makes the lecture's
# sampling loop run forever. The sampler here is that same loop (the same forward pass with the student's
# trained parameters and the batchnorm statistics of the training set) with every name cut at
# `MAX_NAME_LENGTH` characters and a deadline for all of them: bounded in length and time.

MAX_NAME_LENGTH = 24         # the longest name in the data set has 15 letters
SAMPLE_SECONDS = 5.0
BN_EPS = 1e-5
ITOS = {0: "."} | {i + 1: c for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}


def drive_report_train(module, inputs: dict) -> dict:
    """The student's `train` on the report's data: the loss of every step, and the trained parameters."""
    params = inputs["params"]
    losses = module.train(params, inputs["X"], inputs["Y"], inputs["steps"], inputs["lr"],
                          batch_size=inputs["batch_size"], seed=inputs["seed"])
    if isinstance(losses, (list, tuple)):
        losses = [_number(x) for x in losses]
    return {"losses": losses, "params": params}


def _number(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def drive_sample(module, inputs: dict) -> dict:
    """Names from the trained parameters (given by the grader, as `drive_report_train` returned them)."""
    params, X = inputs["params"], inputs["X"]
    deadline = time.monotonic() + inputs.get("seconds", SAMPLE_SECONDS)
    with torch.no_grad():
        hprebn = params["C"][X].view(X.shape[0], -1) @ params["W1"] + params["b1"]
        bnmean, bnvar = hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)
        g = torch.Generator().manual_seed(inputs.get("seed", 2147483647 + 10))
        block = X.shape[1]
        names, cut = [], 0
        for _ in range(inputs["count"]):
            context, name = [0] * block, []
            while len(name) < MAX_NAME_LENGTH and time.monotonic() < deadline:
                x = torch.tensor([context])
                h = params["C"][x].view(1, -1) @ params["W1"] + params["b1"]
                h = params["bngain"] * (h - bnmean) * (bnvar + BN_EPS) ** -0.5 + params["bnbias"]
                probs = torch.softmax(torch.tanh(h) @ params["W2"] + params["b2"], 1)
                if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
                    return {"names": names, "stopped": "the model's probabilities are not finite (NaN or inf): "
                                                      "training diverged"}
                ix = int(torch.multinomial(probs, 1, generator=g).item())
                if ix == 0:
                    break
                name.append(ITOS.get(ix, "?"))
                context = context[1:] + [ix]
            else:
                if time.monotonic() >= deadline:
                    return {"names": names, "stopped": f"sampling stopped after {inputs.get('seconds', SAMPLE_SECONDS):g} s"}
                cut += 1
                name.append("…")
            names.append("".join(name))
    return {"names": names, "cut": cut}
