"""backprop_ninja: manual tensor backprop through a 2-layer MLP with batchnorm (makemore part 4).

Exercises (ids `backprop_ninja.<entry>`), all with autograd forbidden in the student's process:
  manual_backward         exercise 1: the 26 intermediate gradients, graded tensor by tensor, cascade-free
  cross_entropy_backward  exercise 2: dlogits in one go
  batchnorm_backward      exercise 3: dhprebn in one go (Bessel-corrected variance)
  tanh_backward, embedding_backward, forward_backward, train: exercise 4

The truth is PyTorch autograd on the grader's own forward pass (`STEPS`, the lecture's steps in order).

Cascade-free grading (DESIGN.md, decision 5): for each tensor X of exercise 1 the grader also applies
the correct backward of the steps that consume X to the student's *own* gradients of those steps'
outputs (`torch.autograd.grad` on the step alone, the student's tensors as `grad_outputs`). Where the
student's answer equals that, the step is right, whatever came from upstream. Mistakes are diagnosed
against this local expectation too, so one wrong step is named once, not once per tensor after it.

Tolerances are the dtype defaults of `compare` (float32 as in the lecture on public cases, float64 on
hidden ones), with the absolute part scaled by the size of the summands a gradient is made of, not of
the gradient itself (`magnitudes`: the backward pass on absolute values). Where the summands cancel
(`dlogit_maxes` and `db1` are mathematically 0; at batch 2 batchnorm leaves hprebn almost no gradient),
autograd's answer is rounding noise and a correct answer's noise is relative to those summands. Every
catalogued mistake is >= 1e-3 relative (the smallest: a dropped epsilon on the low-variance units of
public-1, up to 12%; Bessel at n=57, 1.8%), far above float32's 1e-4; the tests check both directions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial, wraps
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn.functional as F

from ...compare import ERROR, EXACT, NOT_IMPLEMENTED, WRONG, Comparison, Tolerance, as_tensor, compare, tolerance_for
from ...diagnose import close, constant_factor, keepdim, name_factor, not_reduced, transposed
from ...exercise import Case, Exercise, Mistake, Seeds
from ...truth import backward, vjp
from .student_side import GRADIENT_NAMES, PARAMETER_NAMES, drive_batchnorm, drive_cross_entropy, drive_embedding, drive_forward_backward, drive_manual_backward, drive_tanh, drive_train  # noqa: F401  (the grader uses some)

MODULE = "backprop_ninja"
VOCAB_SIZE, BLOCK_SIZE, N_EMBD, N_HIDDEN, BATCH_SIZE = 27, 3, 10, 64, 32
BN_EPS = 1e-5
LECTURE_SEED = 2147483647


def single_threaded(fn: Callable) -> Callable:
    """Run `fn` with one torch thread: these tensors are tiny, and on a busy 2-core machine a second
    intra-op thread makes a 1 ms forward/backward take 50-150 ms (measured)."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        if before == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


# -- the model: the lecture's forward pass as named steps ----------------------------------------------

@dataclass(frozen=True)
class Step:
    out: str
    ins: tuple[str, ...]
    fn: Callable  # fn(k, *inputs); k holds n, Xb, Yb


STEPS = (
    Step("emb", ("C",), lambda k, C: C[k.Xb]),
    Step("embcat", ("emb",), lambda k, emb: emb.view(emb.shape[0], -1)),
    Step("hprebn", ("embcat", "W1", "b1"), lambda k, embcat, W1, b1: embcat @ W1 + b1),
    Step("bnmeani", ("hprebn",), lambda k, hprebn: 1 / k.n * hprebn.sum(0, keepdim=True)),
    Step("bndiff", ("hprebn", "bnmeani"), lambda k, hprebn, bnmeani: hprebn - bnmeani),
    Step("bndiff2", ("bndiff",), lambda k, bndiff: bndiff**2),
    Step("bnvar", ("bndiff2",), lambda k, bndiff2: 1 / (k.n - 1) * bndiff2.sum(0, keepdim=True)),
    Step("bnvar_inv", ("bnvar",), lambda k, bnvar: (bnvar + BN_EPS)**-0.5),
    Step("bnraw", ("bndiff", "bnvar_inv"), lambda k, bndiff, bnvar_inv: bndiff * bnvar_inv),
    Step("hpreact", ("bngain", "bnraw", "bnbias"), lambda k, bngain, bnraw, bnbias: bngain * bnraw + bnbias),
    Step("h", ("hpreact",), lambda k, hpreact: torch.tanh(hpreact)),
    Step("logits", ("h", "W2", "b2"), lambda k, h, W2, b2: h @ W2 + b2),
    Step("logit_maxes", ("logits",), lambda k, logits: logits.max(1, keepdim=True).values),
    Step("norm_logits", ("logits", "logit_maxes"), lambda k, logits, logit_maxes: logits - logit_maxes),
    Step("counts", ("norm_logits",), lambda k, norm_logits: norm_logits.exp()),
    Step("counts_sum", ("counts",), lambda k, counts: counts.sum(1, keepdims=True)),
    Step("counts_sum_inv", ("counts_sum",), lambda k, counts_sum: counts_sum**-1),
    Step("probs", ("counts", "counts_sum_inv"), lambda k, counts, counts_sum_inv: counts * counts_sum_inv),
    Step("logprobs", ("probs",), lambda k, probs: probs.log()),
    Step("loss", ("logprobs",), lambda k, logprobs: -logprobs[range(k.n), k.Yb].mean()),
)
CONSUMERS = {name: tuple(s for s in STEPS if name in s.ins) for name in GRADIENT_NAMES}


def init_params(seed: int, vocab_size=VOCAB_SIZE, n_embd=N_EMBD, block_size=BLOCK_SIZE, n_hidden=N_HIDDEN,
                dtype=torch.float32, low_variance: bool = False) -> dict:
    """The lecture's non-standard init (small random biases and bn parameters), one seeded generator.
    `low_variance`: every 8th hidden unit gets a 50x smaller fan-in, so its batch variance is 1e-4..1e-3 and
    a dropped 1e-5 epsilon changes its gradient by 1-12%, visible even in float32."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn((vocab_size, n_embd), generator=g, dtype=dtype)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g, dtype=dtype) * (5 / 3) / ((n_embd * block_size) ** 0.5)
    b1 = torch.randn(n_hidden, generator=g, dtype=dtype) * 0.1
    W2 = torch.randn((n_hidden, vocab_size), generator=g, dtype=dtype) * 0.1
    b2 = torch.randn(vocab_size, generator=g, dtype=dtype) * 0.1
    bngain = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1
    if low_variance:
        W1[:, ::8] *= 0.02
    return dict(C=C, W1=W1, b1=b1, W2=W2, b2=b2, bngain=bngain, bnbias=bnbias)


@dataclass
class Forward:
    """One forward pass of `STEPS` and autograd's gradient of the loss for every tensor."""
    k: SimpleNamespace         # n, Xb, Yb
    values: dict               # every tensor by name, detached
    grads: dict                # d loss / d tensor, by name
    magnitudes: dict = None    # name -> the scale of its rounding noise (see `magnitudes`)

    def inputs(self) -> dict:
        """What `manual_backward(ctx)` gets: every tensor and parameter, plus n, Xb, Yb."""
        return {**{k: v.clone() for k, v in self.values.items()}, "n": self.k.n, "Xb": self.k.Xb.clone(),
                "Yb": self.k.Yb.clone()}


def run_forward(params: dict, Xb: torch.Tensor, Yb: torch.Tensor) -> Forward:
    k = SimpleNamespace(n=int(Xb.shape[0]), Xb=Xb, Yb=Yb)
    with torch.enable_grad():
        values = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
        for step in STEPS:
            values[step.out] = step.fn(k, *(values[i] for i in step.ins))
            values[step.out].retain_grad()
        values["loss"].backward()
    grads = {name: values[name].grad.detach() for name in GRADIENT_NAMES}
    fwd = Forward(k, {name: v.detach() for name, v in values.items()}, grads)
    fwd.magnitudes = magnitudes(fwd)
    return fwd


# -- the names data -------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _examples(block_size: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(context, next character) pairs of the first 3000 training names: plenty for batches, fast to build."""
    from ...data import build_dataset, load_names, split_words
    train, _, _ = split_words(load_names())
    return build_dataset(train[:3000], block_size)


def names_batch(seed: int, n: int, lacks_last_char: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of real examples. `lacks_last_char`: no 'z' (26) among the inputs, so an embedding
    backward through `F.one_hot(Xb)` without `num_classes` comes out one row short."""
    X, Y = _examples()
    g = torch.Generator().manual_seed(seed)
    for _ in range(1000):
        ix = torch.randint(0, X.shape[0], (n,), generator=g)
        # All rows the same context (likely at batch 2: two name starts) would make every batch variance 0
        # and every gradient below batchnorm exactly 0: a case that tests nothing there.
        distinct = n < 2 or bool((X[ix] != X[ix][0]).any())
        if distinct and (not lacks_last_char or int(X[ix].max()) < VOCAB_SIZE - 1):
            break
    return X[ix], Y[ix]


# -- scales: float noise of a correct answer is relative to the summands of each sum in the backward ------

def _amax(*tensors) -> float:
    out = 0.0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            m = float(t.detach().abs().to(torch.float64).nan_to_num(0.0, 0.0, 0.0).max())
            out = max(out, m)
    return out


def magnitudes(fwd: "Forward") -> dict:
    """The backward pass with every factor replaced by its absolute value: M[x] bounds the summands that
    make up dx along every path. A correct answer's rounding is ~eps * M[x] even where dx itself cancels
    to ~0 (dlogit_maxes; db1; and at batch 2, where batchnorm leaves hprebn almost no gradient, everything
    below it), so M[x] is the scale of the absolute tolerance."""
    V, n, a = fwd.values, fwd.k.n, torch.abs
    M = {"logprobs": F.one_hot(fwd.k.Yb, V["logprobs"].shape[1]).to(V["logprobs"].dtype) / n}
    M["probs"] = M["logprobs"] / V["probs"]
    M["counts_sum_inv"] = (V["counts"] * M["probs"]).sum(1, keepdim=True)
    M["counts_sum"] = V["counts_sum"] ** -2 * M["counts_sum_inv"]
    M["counts"] = V["counts_sum_inv"] * M["probs"] + M["counts_sum"]
    M["norm_logits"] = V["counts"] * M["counts"]
    M["logit_maxes"] = M["norm_logits"].sum(1, keepdim=True)
    M["logits"] = M["norm_logits"] + F.one_hot(V["logits"].argmax(1), V["logits"].shape[1]) * M["logit_maxes"]
    M["h"] = M["logits"] @ a(V["W2"]).T
    M["W2"] = a(V["h"]).T @ M["logits"]
    M["b2"] = M["logits"].sum(0)
    M["hpreact"] = (1 - V["h"] ** 2) * M["h"]
    M["bngain"] = (a(V["bnraw"]) * M["hpreact"]).sum(0, keepdim=True)
    M["bnbias"] = M["hpreact"].sum(0, keepdim=True)
    M["bnraw"] = a(V["bngain"]) * M["hpreact"]
    M["bnvar_inv"] = (a(V["bndiff"]) * M["bnraw"]).sum(0, keepdim=True)
    M["bnvar"] = 0.5 * (V["bnvar"] + BN_EPS) ** -1.5 * M["bnvar_inv"]
    M["bndiff2"] = M["bnvar"].expand_as(V["bndiff2"]) / (n - 1)
    M["bndiff"] = V["bnvar_inv"] * M["bnraw"] + 2 * a(V["bndiff"]) * M["bndiff2"]
    M["bnmeani"] = M["bndiff"].sum(0, keepdim=True)
    M["hprebn"] = M["bndiff"] + M["bnmeani"] / n
    M["embcat"] = M["hprebn"] @ a(V["W1"]).T
    M["W1"] = a(V["embcat"]).T @ M["hprebn"]
    M["b1"] = M["hprebn"].sum(0)
    M["emb"] = M["embcat"].view(V["emb"].shape)
    M["C"] = torch.zeros_like(V["C"]).index_add_(0, fwd.k.Xb.reshape(-1), M["emb"].reshape(-1, V["C"].shape[1]))
    return {name: _amax(m) for name, m in M.items()}


def term_scale(name: str, U: dict, V: dict, n: int) -> float:
    """The largest summand of the one step that computes d`name` from the upstream gradients `U` (the
    student's, for the local verdict) and forward values `V` (0 where elementwise, or an upstream is unknown)."""
    u = lambda key: U.get(key)  # noqa: E731
    try:
        rules = {
            "counts_sum_inv": lambda: _amax(V["counts"] * u("probs")),
            "counts": lambda: _amax(V["counts_sum_inv"] * u("probs"), u("counts_sum")),
            "logit_maxes": lambda: _amax(u("norm_logits")),
            "logits": lambda: _amax(u("norm_logits"), u("logit_maxes")),
            "h": lambda: _amax(u("logits")) * _amax(V["W2"]),
            "W2": lambda: _amax(u("logits")) * _amax(V["h"]),
            "b2": lambda: _amax(u("logits")),
            "bngain": lambda: _amax(V["bnraw"] * u("hpreact")),
            "bnbias": lambda: _amax(u("hpreact")),
            "bnvar_inv": lambda: _amax(V["bndiff"] * u("bnraw")),
            "bndiff": lambda: _amax(V["bnvar_inv"] * u("bnraw"), 2 * V["bndiff"] * u("bndiff2")),
            "bnmeani": lambda: _amax(u("bndiff")),
            "hprebn": lambda: _amax(u("bndiff"), u("bnmeani") / n),
            "embcat": lambda: _amax(u("hprebn")) * _amax(V["W1"]),
            "W1": lambda: _amax(u("hprebn")) * _amax(V["embcat"]),
            "b1": lambda: _amax(u("hprebn")),
            "C": lambda: _amax(u("emb")),
        }
        return float(rules[name]()) if name in rules else 0.0
    except (TypeError, RuntimeError, KeyError):  # an upstream missing or of the wrong shape
        return 0.0


def global_scale(fwd: "Forward", name: str) -> float:
    return max(_amax(fwd.grads[name]), fwd.magnitudes[name]) or 1.0


# -- exercise 1: cascade-free, tensor by tensor ---------------------------------------------------------

def _usable(got, like: torch.Tensor) -> torch.Tensor | None:
    """The student's gradient as an upstream for the next step: a float tensor of the right shape (a
    dropped size-1 dimension is forgiven here; the tensor itself is marked wrong for it). inf/NaN are
    kept: the next step applied to them correctly gives them at the same places."""
    t = as_tensor(got)
    if t is None or not t.is_floating_point():
        return None
    if tuple(t.shape) != tuple(like.shape):
        if t.numel() != like.numel() or t.squeeze().shape != like.squeeze().shape:
            return None
        t = t.reshape(like.shape)
    return t.to(like.dtype)


@dataclass
class Local:
    expected: torch.Tensor      # the correct backward of the consuming steps on the student's upstream
    branches: list              # one contribution per consuming step (a value used twice has two)
    scale: float


def local_expectation(fwd: Forward, name: str, outputs: dict) -> Local | None:
    """d`name` from the student's own gradients of the outputs of the steps that consume it."""
    branches, upstream = [], {}
    for step in CONSUMERS[name]:
        if step.out == "loss":
            up = torch.ones((), dtype=fwd.values["loss"].dtype)
        else:
            up = _usable(outputs.get(step.out), fwd.values[step.out])
            if up is None:
                return None  # not judged locally: the upstream is missing or unusable
            upstream[step.out] = up
        with torch.enable_grad():
            leaves = [fwd.values[i].detach().requires_grad_(i == name) for i in step.ins]
            out = step.fn(fwd.k, *leaves)
            x = leaves[step.ins.index(name)]
            (g,) = vjp(out, x, up, allow_unused=True)
        branches.append(torch.zeros_like(x) if g is None else g.detach())
    expected = branches[0].clone()
    for b in branches[1:]:
        expected += b
    if not bool(torch.isfinite(expected).any()):
        return None  # all inf/NaN from upstream: nothing left to judge this step on
    # The student's upstream carries its own rounding: that of a right one (M), times how much larger than
    # M's terms it is (a wrong upstream can be far larger).
    growth = max([1.0] + [_amax(up) / (fwd.magnitudes[out] or 1.0) for out, up in upstream.items()])
    scale = max(_amax(expected), term_scale(name, upstream, fwd.values, fwd.k.n),
                fwd.magnitudes[name] * min(growth, 1e6)) or 1.0
    return Local(expected, branches, scale)


def uninformative(fwd: Forward, name: str, local: Local, outputs: dict) -> str:
    """Why a step that equals the right step applied to the student's own upstream earns no local credit
    ('' where it does). The local check is informative only where it would also have failed the wrong
    steps: with a zero, constant or copied upstream, or where the right step gives ~0, a sign flip, a
    factor or a zero answer would pass it as well (returning zeros for every tensor would be 25/26)."""
    if close(torch.zeros_like(local.expected), local.expected, scale=local.scale):
        return "the right step applied to your upstream gives ~0 here, which cannot tell a right step from a wrong one"
    for step in CONSUMERS[name]:
        if step.out == "loss":
            continue
        up = _usable(outputs.get(step.out), fwd.values[step.out])
        if up is None:
            continue
        flat = up.flatten()
        if flat.numel() > 1 and bool((flat == flat[0]).all()):
            return f"your upstream d{step.out} is constant ({float(flat[0]):.3g} everywhere)"
        # A copy of the tensor itself (`dX = X`). Not of other tensors: some gradients are legitimately
        # proportional to a forward value (dcounts_sum = counts_sum_inv / n).
        if close(up, fwd.values[step.out]):
            return f"your upstream d{step.out} is a copy of {step.out} itself, not its gradient"
    return ""


def carried_precision(outputs: dict, names, dtype: torch.dtype) -> tuple[Tolerance | None, str]:
    """Where some of the student's gradients are in a lower precision than the case (`torch.zeros(probs.shape)`
    is float32 on a float64 case), that rounding flows into every gradient computed from them: all are
    judged at that precision, with a note. (None, '') where all are at the case's precision."""
    low = {}
    for name in names:
        t = outputs.get(name)
        if isinstance(t, torch.Tensor) and t.is_floating_point() and torch.finfo(t.dtype).eps > torch.finfo(dtype).eps:
            low.setdefault(t.dtype, []).append(name)
    if not low:
        return None, ""
    worst_dtype = max(low, key=lambda d: torch.finfo(d).eps)
    a, b = tolerance_for(worst_dtype), tolerance_for(dtype)
    shown = ", ".join(("d" + n if n in GRADIENT_NAMES else n) for n in low[worst_dtype][:3]) + (", ..." if len(low[worst_dtype]) > 3 else "")
    return (Tolerance(rtol=max(a.rtol, b.rtol), atol=max(a.atol, b.atol)),
            f"judged at {worst_dtype} precision: {shown} {'is' if len(low[worst_dtype]) == 1 else 'are'} "
            f"{worst_dtype} on this {dtype} case, and that rounding flows into what is computed from it")


def local_verdict(fwd: Forward, name: str, got, outputs: dict,
                  tolerance: Tolerance | None = None) -> tuple[Comparison | None, str]:
    """The step judged on the student's own upstream: (comparison or None, why no credit where none)."""
    local = local_expectation(fwd, name, outputs)
    if local is None:
        return None, ""
    lc = compare(name, got, local.expected, scale=local.scale, tolerance=tolerance)
    if lc.passed:
        why = uninformative(fwd, name, local, outputs)
        if why:
            return None, why
    return lc, ""


def not_reached(case: Case, raised: dict, outputs: dict) -> tuple[set, str, str]:
    """From the driver's record of an exception: the names not reached, the message for the first of them
    (the exception, once, at its line) and for the rest."""
    assigned = set(raised.get("assigned") or ())
    missing = {name for name in GRADIENT_NAMES if ("d" + name) not in assigned and outputs.get(name) is None}
    error = str(raised.get("error", "an exception"))
    if case.hidden:  # the student's message could print hidden inputs
        error = error.split(":", 1)[0]
    line = raised.get("line")
    at = f" at line {line}" if line else ""
    code = str(raised.get("code") or "")
    first = f"raised {error}{at}" + (f": `{code}`" if code and not case.hidden else "")
    return missing, first, f"not reached: {error.split(':', 1)[0]}{at}"


def judge_manual_backward(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    fwd: Forward = case.info["forward"]
    raised = outputs.get("raised") if isinstance(outputs.get("raised"), dict) else None
    missing, first_message, rest_message = not_reached(case, raised, outputs) if raised else (set(), "", "")
    shown = False
    comparisons = []
    tolerance, precision_note = carried_precision(outputs, GRADIENT_NAMES, fwd.values["loss"].dtype)
    for name in GRADIENT_NAMES:
        got = outputs.get(name)
        if name in missing:
            c = Comparison(name, ERROR, expected_shape=tuple(truth[name].shape),
                           message=rest_message if shown else first_message, mistake="exception")
            shown = True
            comparisons.append(c)
            continue
        c = compare(name, got, truth[name], scale=global_scale(fwd, name), tolerance=tolerance)
        if precision_note and "precision" not in c.message and c.verdict != NOT_IMPLEMENTED:
            c.message = "; ".join(m for m in (c.message, precision_note) if m)
        if c.mistake == "nan" and name == "bnvar" and not bool((fwd.values["bnvar"] > 0).all()):
            c.hint = ("inf where a unit's batch variance is 0 (identical rows in the batch): that is what the "
                      "1e-5 in (bnvar + 1e-5)**-0.5 is for; keep it in the derivative")
        if c.passed:
            c.local_verdict = c.verdict
        elif c.verdict != NOT_IMPLEMENTED:
            lc, why = local_verdict(fwd, name, got, outputs, tolerance)
            if lc is not None:
                c.local_verdict = lc.verdict
                c.details["local_maxdiff"] = lc.maxdiff
            elif why:
                c.details["no_local_credit"] = why
        comparisons.append(c)
    return comparisons


def _local_of(case, name, context) -> Local | None:
    fwd = (case.info or {}).get("forward") if case is not None else None
    if fwd is None or name not in CONSUMERS or not context:
        return None
    return local_expectation(fwd, name, context.get("outputs") or {})


def local_aware(test: Callable) -> Callable:
    """A matcher judged against the step's own expectation where the step is judged locally (else against
    the truth), with that comparison's scale."""
    def matches(got, exp, case=None, name=None, context=None, **_):
        local = _local_of(case, name, context)
        if local is not None:
            target, scale = local.expected, local.scale
        else:
            fwd = (case.info or {}).get("forward") if case is not None else None
            target = exp
            scale = global_scale(fwd, name) if fwd is not None and name in fwd.grads else None
        return test(got, target, case=case, name=name, local=local, context=context or {}, scale=scale)
    return matches


def _pair_like(got, exp):
    """Both in the expected's dtype: `close` then judges with that dtype's tolerance."""
    g, e = as_tensor(got), as_tensor(exp)
    if g is None or e is None or not e.is_floating_point():
        return None, None
    return g.to(e.dtype), e


# The generic shape mistakes of `diagnose`, with the scale of the comparison they explain.
def _keepdim(got, exp, scale=None, **_):
    return keepdim(got, exp, scale)


def _not_reduced(got, exp, scale=None, **_):
    return not_reduced(got, exp, scale)


def _transposed(got, exp, scale=None, **_):
    return transposed(got, exp, scale)


def _sign(got, exp, scale=None, **_):
    g, e = _pair_like(got, exp)
    return g is not None and g.shape == e.shape and close(-g, e, scale=scale) and not close(g, e, scale=scale)


def _tanh_step(got, exp, case=None, name=None, local=None, context=None, scale=None, **_):
    """d tanh written wrongly, with the step's own upstream dh."""
    fwd: Forward = case.info["forward"]
    dh = _usable((context.get("outputs") or {}).get("h"), fwd.values["h"])
    dh = fwd.grads["h"] if dh is None else dh
    h, x = fwd.values["h"], fwd.values["hpreact"]
    for wrong, what in (((1 - h) ** 2 * dh, "(1 - h)**2 is not 1 - h**2"),
                        ((1 - x ** 2) * dh, "the derivative is 1 - tanh(hpreact)**2 = 1 - h**2, not 1 - hpreact**2"),
                        (1 - h ** 2, "multiply the local derivative by the upstream gradient dh")):
        if close(got, wrong, scale=scale):
            return what
    return False


def _sizes(case) -> dict:
    return {"n": case.info.get("n", 0)} if case is not None and case.info else {}


def _upstream_right(got, exp, case=None, name=None, context=None, **_):
    """The same judgement as the local verdict column (informative upstream included)."""
    fwd = (case.info or {}).get("forward") if case is not None else None
    if fwd is None or name not in CONSUMERS:
        return False
    outputs = (context or {}).get("outputs") or {}
    tolerance, _note = carried_precision(outputs, GRADIENT_NAMES, fwd.values["loss"].dtype)
    lc, _why = local_verdict(fwd, name, got, outputs, tolerance)
    return lc is not None and lc.passed


def _bessel_factor(got, exp, case=None, **_):
    c, n = constant_factor(got, exp), _sizes(case).get("n", 0)
    return c is not None and n > 1 and any(abs(c - f) < 1e-3 * f for f in ((n - 1) / n, n / (n - 1)))


def _epsilon_dropped(got, exp, case=None, name=None, local=None, context=None, scale=None, **_):
    fwd: Forward = case.info["forward"]
    up = _usable((context.get("outputs") or {}).get("bnvar_inv"), fwd.values["bnvar_inv"])
    if up is None:
        up = fwd.grads["bnvar_inv"]
    without = -0.5 * fwd.values["bnvar"] ** -1.5 * up
    return not close(without, exp, scale=scale) and close(got, without, scale=scale)


def _one_branch(got, exp, case=None, name=None, local=None, context=None, **_):
    """The answer is one contribution of a value used twice (or a row picked twice) without the other."""
    if name == "C":
        return _index_assigned(got, exp, case, scale=local.scale if local is not None else None)
    if local is None or len(local.branches) < 2:
        return False
    for i, branch in enumerate(local.branches):
        if close(got, branch, scale=local.scale) and not close(branch, exp, scale=local.scale):
            consumer = CONSUMERS[name][i].out
            missing = [s.out for j, s in enumerate(CONSUMERS[name]) if j != i]
            return f"you have only the contribution through `{consumer}`; add the one through `{', '.join(missing)}`"
    return False


def _index_assigned(got, exp, case, scale=None) -> bool | str:
    """dC[Xb] = demb (or a loop with `=`): a row of C picked several times keeps one contribution."""
    g, e = as_tensor(got), as_tensor(exp)
    if g is None or e is None or g.shape != e.shape:
        return False
    Xb = case.info["forward"].k.Xb if "forward" in case.info else case.info.get("Xb")
    if Xb is None:
        return False
    counts = torch.bincount(Xb.reshape(-1), minlength=e.shape[0])
    single = counts <= 1
    if not close(g[single], e[single], scale=scale) or close(g[~single], e[~single], scale=scale):
        return False
    return "a row of C picked several times by Xb must get the sum of their gradients (`+=`, `index_add_`)"


def _onehot_shrunk(got, exp, case=None, scale=None, **_) -> bool | str:
    g, e = as_tensor(got), as_tensor(exp)
    if g is None or e is None or g.dim() != e.dim() or g.dim() < 1 or not 0 < g.shape[0] < e.shape[0] \
            or g.shape[1:] != e.shape[1:]:
        return False
    if not close(g.to(e.dtype), e[: g.shape[0]], scale=scale):
        return False
    if case is not None and case.hidden:  # a hidden batch's contents stay hidden
        return "in a batch without the last index"
    return f"{g.shape[0]} rows: this batch's largest index is {g.shape[0] - 1}, not {e.shape[0] - 1}"


def _wrong_place(got, exp, case=None, name=None, local=None, context=None, **_):
    """-1/n placed at the wrong entries (e.g. `[:, Yb]`, or the argmax instead of Yb)."""
    g, e = as_tensor(got), as_tensor(exp)
    if g is None or e is None or g.shape != e.shape:
        return False
    if name == "logits":  # the max branch routed to another entry than the argmax
        fwd: Forward = case.info["forward"]
        outs = context.get("outputs") or {}
        dnorm = _usable(outs.get("norm_logits"), fwd.values["norm_logits"])
        dmax = _usable(outs.get("logit_maxes"), fwd.values["logit_maxes"])
        if dnorm is None or dmax is None or not bool((dmax.abs() > 0).any()):
            return False
        rest = g.to(dnorm.dtype) - dnorm
        routed = close(rest.sum(1, keepdim=True), dmax) and bool(((rest.abs() > 1e-3 * dmax.abs().max()).sum(1) <= 1).all())
        return routed and "route dlogit_maxes to the position of each row's max: logits.max(1).indices"
    nz_g, nz_e = g != 0, e != 0
    if not bool(nz_e.any()) or bool((nz_g == nz_e).all()):
        return False
    value = e[nz_e].flatten()[0]
    return bool(nz_g.any()) and close(g[nz_g], torch.full_like(g[nz_g], float(value))) and \
        "each row's gradient goes to the entry of the correct character: [range(n), Yb]"


def _scale_named(got, exp, case=None, **_):
    c = constant_factor(got, exp)
    if c is None or abs(c + 1) < 1e-6:  # -1 is the `sign` mistake
        return False
    return f"off by a factor of {name_factor(c, _sizes(case))}"


# Reductions of exercise 1: the tensor's gradient is `pre` summed over `axis` (what broadcasting spread).
REDUCTIONS = {
    "b2": (("logits",), lambda V, U: U["logits"], 0),
    "b1": (("hprebn",), lambda V, U: U["hprebn"], 0),
    "bnbias": (("hpreact",), lambda V, U: U["hpreact"], 0),
    "bngain": (("hpreact",), lambda V, U: V["bnraw"] * U["hpreact"], 0),
    "bnvar_inv": (("bnraw",), lambda V, U: V["bndiff"] * U["bnraw"], 0),
    "bnmeani": (("bndiff",), lambda V, U: -U["bndiff"], 0),
    "counts_sum_inv": (("probs",), lambda V, U: V["counts"] * U["probs"], 1),
    "logit_maxes": (("norm_logits",), lambda V, U: -U["norm_logits"], 1),
}


def _wrong_axis(got, exp, case=None, name=None, context=None, **_):
    """`db2 = dlogits.sum(1)`: summed over the other dimension than the one the tensor was broadcast along."""
    if name not in REDUCTIONS:
        return False
    g = as_tensor(got)
    fwd: Forward = case.info["forward"]
    ups, pre, axis = REDUCTIONS[name]
    outs = (context or {}).get("outputs") or {}
    U = {}
    for up in ups:
        u = _usable(outs.get(up), fwd.values[up])
        U[up] = fwd.grads[up] if u is None else u
    wrong = pre(fwd.values, U).sum(1 - axis)
    if g is None or g.numel() != wrong.numel() or not close(g.reshape(-1), wrong.reshape(-1)):
        return False
    return f"sum over dimension {axis} (the one {name} was broadcast along), not {1 - axis}"


def _chain_dropped(got, exp, case=None, name=None, context=None, **_):
    """`dprobs = 1/probs`: the local derivative without the upstream gradient."""
    fwd: Forward = case.info["forward"]
    V = fwd.values
    local_only = {"probs": (1.0 / V["probs"], "dlogprobs"), "norm_logits": (V["counts"], "dcounts"),
                  "hpreact": (1 - V["h"] ** 2, "dh"), "bnraw": (V["bngain"].expand_as(V["bnraw"]), "dhpreact"),
                  "counts_sum": (-V["counts_sum"] ** -2, "dcounts_sum_inv")}
    if name not in local_only:
        return False
    value, upstream = local_only[name]
    return close(got, value) and f"multiply the local derivative by the upstream gradient {upstream}"


def _bnraw_without_gain(got, exp, case=None, name=None, context=None, **_):
    """`dbnraw = dhpreact`: hpreact = bngain * bnraw + bnbias, so bngain multiplies the gradient."""
    fwd: Forward = case.info["forward"]
    up = _usable(((context or {}).get("outputs") or {}).get("hpreact"), fwd.values["hpreact"])
    up = fwd.grads["hpreact"] if up is None else up
    return close(got, up) and not close(got, exp)


SHAPE_HINT = "the gradient must have exactly the shape of its tensor"
MISTAKES_1 = (
    Mistake("upstream", "this step is right: it was fed a wrong upstream gradient; fix the first wrong step",
            _upstream_right),
    Mistake("onehot_num_classes", "F.one_hot(Xb) without num_classes=C.shape[0] has only as many classes as the "
            "largest index in this batch", local_aware(_onehot_shrunk), checks=("C",)),
    Mistake("bessel", "the batch variance divides by n-1 (Bessel's correction), so its gradient has 1/(n-1), not 1/n",
            local_aware(_bessel_factor), checks=("bndiff2",)),
    Mistake("epsilon", "bnvar_inv = (bnvar + 1e-5)**-0.5: keep the epsilon in its derivative, "
            "-0.5 * (bnvar + 1e-5)**-1.5", local_aware(_epsilon_dropped), checks=("bnvar",)),
    Mistake("missing_branch", "this value is used twice in the forward pass: its gradient is the SUM of the "
            "gradients through both uses", local_aware(_one_branch), checks=("counts", "bndiff", "hprebn", "logits", "C")),
    Mistake("wrong_index", "the gradient is at the wrong entries", local_aware(_wrong_place),
            checks=("logprobs", "logits")),
    Mistake("tanh_derivative", "d tanh(x)/dx = 1 - tanh(x)**2 = 1 - h**2, times the upstream dh",
            local_aware(_tanh_step), checks=("hpreact",)),
    Mistake("chain_rule", "the chain rule: a gradient is the local derivative times the upstream gradient",
            _chain_dropped, checks=("probs", "norm_logits", "hpreact", "bnraw", "counts_sum")),
    Mistake("bngain_missing", "hpreact = bngain * bnraw + bnbias: dbnraw = bngain * dhpreact (bngain is missing)",
            _bnraw_without_gain, checks=("bnraw",)),
    Mistake("wrong_axis", "summed over the wrong dimension", _wrong_axis, checks=tuple(REDUCTIONS)),
    Mistake("keepdim", "right numbers, but a size-1 dimension is missing or extra: a gradient has exactly its "
            "tensor's shape (`keepdim=True` in the sum for a (1,64) tensor, none for a (64,) one)",
            local_aware(_keepdim)),
    Mistake("not_reduced", "the tensor was broadcast in the forward pass, so its gradient must be summed over the "
            "broadcast dimension(s)", local_aware(_not_reduced)),
    Mistake("transposed", "the gradient is transposed: for `A @ B`, dA = dout @ B.T and dB = A.T @ dout; match "
            "the shapes", local_aware(_transposed)),
    Mistake("sign", "the sign is flipped", local_aware(_sign)),
    Mistake("scale", "the answer is a constant multiple of the right one", local_aware(_scale_named)),
    Mistake("shape", SHAPE_HINT, local_aware(lambda got, exp, **_: as_tensor(got) is not None and
                                             tuple(as_tensor(got).shape) != tuple(as_tensor(exp).shape))),
)


def _model_case(case_id: str, hidden: bool, seed: int, batch_seed: int, n: int, dtype, *, n_hidden=N_HIDDEN,
                n_embd=N_EMBD, low_variance=False, lacks_last_char=False, label="") -> Case:
    params = init_params(seed, n_embd=n_embd, n_hidden=n_hidden, dtype=dtype, low_variance=low_variance)
    Xb, Yb = names_batch(batch_seed, n, lacks_last_char)
    fwd = run_forward(params, Xb, Yb)
    return Case(case_id, hidden, fwd.inputs(), info={"forward": fwd, "n": n, "seed": seed}, label=label)


# Hidden configurations: (batch, hidden width, embedding width, low-variance units, no 'z' in the batch).
HIDDEN_MODELS = ((57, 64, 10, True, False), (2, 17, 10, False, True), (7, 100, 6, True, True),
                 (32, 64, 10, False, False))


def model_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    cases = [
        _model_case("public-0", False, LECTURE_SEED, 42, BATCH_SIZE, torch.float32, lacks_last_char=True,
                    label="float32, batch 32, the lecture's model"),
        _model_case("public-1", False, 1, 7, 7, torch.float32, low_variance=True,
                    label="float32, batch 7, some low-variance hidden units"),
    ]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, len(HIDDEN_MODELS))):
        n, width, embd, low, lacks = HIDDEN_MODELS[i]
        cases.append(_model_case(f"hidden-{i}", True, seed, seed + 1, n, torch.float64, n_hidden=width,
                                 n_embd=embd, low_variance=low, lacks_last_char=lacks,
                                 label=f"float64, batch {n}, {width} hidden units"))
    return cases


# -- exercise 2: cross entropy ----------------------------------------------------------------------------

def ce_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, logits, Yb, label):
        return Case(case_id, hidden, {"logits": logits, "Yb": Yb}, info={"n": int(Yb.shape[0]), "Yb": Yb},
                    label=label)
    lecture = run_forward(init_params(LECTURE_SEED), *names_batch(42, BATCH_SIZE, True))
    out = [case("public-0", False, lecture.values["logits"], lecture.k.Yb, "float32, batch 32, the lecture's logits")]
    # Logits up to ~100: exp() overflows float32 (e^89 = inf) unless the row's max is subtracted first.
    g = torch.Generator().manual_seed(3)
    out.append(case("public-1", False, torch.randn(7, VOCAB_SIZE, generator=g) * 40,
                    torch.randint(0, VOCAB_SIZE, (7,), generator=g), "float32, batch 7, large logits"))
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 3)):
        n, spread = ((57, 3.0), (2, 2.0), (32, 400.0))[i]  # 400: exp overflows float64 too without the max
        g = torch.Generator().manual_seed(seed)
        out.append(case(f"hidden-{i}", True, torch.randn(n, VOCAB_SIZE, generator=g, dtype=torch.float64) * spread,
                        torch.randint(0, VOCAB_SIZE, (n,), generator=g), f"float64, batch {n}"))
    return out


def ce_truth(case: Case) -> dict:
    with torch.enable_grad():
        logits = case.inputs["logits"].clone().requires_grad_(True)
        F.cross_entropy(logits, case.inputs["Yb"]).backward()
    return {"logits": logits.grad}


def _ce_without_onehot(got, exp, case=None, **_):
    n = case.info["n"]
    softmax_only = torch.softmax(case.inputs["logits"], 1) / n  # in the case's dtype: its tolerance
    return close(got, softmax_only) and "the picked logit's own term (-1 at [range(n), Yb]) is missing"


def _ce_wrong_place(got, exp, case=None, **_):
    g = as_tensor(got)
    if g is None or g.shape != exp.shape:
        return False
    n = case.info["n"]
    rest = (g.to(exp.dtype) - torch.softmax(case.inputs["logits"], 1) / n) * n
    placed = (rest.abs() > 0.5)
    want = F.one_hot(case.info["Yb"], exp.shape[1]).bool()
    return bool(placed.any()) and not bool((placed == want).all()) and close(rest[placed], -torch.ones_like(rest[placed])) \
        and "subtract 1 at [range(n), Yb], each row at its own target"


MISTAKES_2 = (
    Mistake("wrong_index", "the -1 of the target goes at each row's own target, [range(n), Yb]", _ce_wrong_place),
    Mistake("missing_branch", "the loss uses each logit in the softmax's normaliser AND the target's logit "
            "directly", _ce_without_onehot),
    Mistake("scale", "the answer is a constant multiple of the right one (the loss is a mean over the batch)",
            _scale_named),
)


# -- exercise 3: batchnorm ----------------------------------------------------------------------------------

def bn_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, seed, n, width, dtype, label):
        g = torch.Generator().manual_seed(seed)
        hprebn = torch.randn(n, width, generator=g, dtype=dtype) * 1.5 + torch.randn(1, width, generator=g, dtype=dtype)
        bngain = torch.randn(1, width, generator=g, dtype=dtype) * 0.1 + 1.0
        bnvar_inv = (hprebn.var(0, keepdim=True, unbiased=True) + BN_EPS) ** -0.5
        bnraw = (hprebn - hprebn.mean(0, keepdim=True)) * bnvar_inv
        dhpreact = torch.randn(n, width, generator=g, dtype=dtype) * 0.01
        return Case(case_id, hidden, {"dhpreact": dhpreact, "bngain": bngain, "bnraw": bnraw, "bnvar_inv": bnvar_inv},
                    info={"n": n, "hprebn": hprebn}, label=label)
    out = [case("public-0", False, 0, BATCH_SIZE, N_HIDDEN, torch.float32, "float32, batch 32"),
           case("public-1", False, 1, 7, N_HIDDEN, torch.float32, "float32, batch 7")]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 3)):
        n, width = ((57, 64), (2, 17), (32, 100))[i]
        out.append(case(f"hidden-{i}", True, seed, n, width, torch.float64, f"float64, batch {n}, {width} units"))
    return out


def bn_truth(case: Case) -> dict:
    x = case.inputs
    with torch.enable_grad():
        hprebn = case.info["hprebn"].clone().requires_grad_(True)
        bnraw = (hprebn - hprebn.mean(0, keepdim=True)) * (hprebn.var(0, keepdim=True, unbiased=True) + BN_EPS) ** -0.5
        backward(x["bngain"] * bnraw, x["dhpreact"])
    return {"hprebn": hprebn.grad}


def judge_batchnorm(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """The scale is the formula's largest summand (the direct term gain*inv*dh, or the variance term up to
    gain*inv*max|bnraw|^2*max|dh|*n/(n-1)): at batch 2 the three terms cancel almost exactly."""
    x, n = case.inputs, case.info["n"]
    direct = _amax(x["bngain"] * x["bnvar_inv"]) * _amax(x["dhpreact"])
    scale = max(_amax(truth["hprebn"]), direct * max(1.0, _amax(x["bnraw"]) ** 2 * n / max(n - 1, 1)))
    return [compare("hprebn", outputs.get("hprebn"), truth["hprebn"], scale=scale)]


def _bn_variants(case) -> dict:
    x = case.inputs  # variants in the case's dtype, judged with its tolerance
    n, dh, raw, k = case.info["n"], x["dhpreact"], x["bnraw"], x["bngain"] * x["bnvar_inv"]
    return {
        "bessel": k / n * (n * dh - dh.sum(0) - raw * (dh * raw).sum(0)),
        "direct": k * dh,
        "no_mean": k / n * (n * dh - n / (n - 1) * raw * (dh * raw).sum(0)),
        "no_variance": k / n * (n * dh - dh.sum(0)),
    }


def _bn_bessel(got, exp, case=None, **_):
    return close(got, _bn_variants(case)["bessel"])


def _bn_branch(got, exp, case=None, **_):
    v = _bn_variants(case)
    for key, what in (("direct", "only the direct path: hprebn also reaches the output through the batch mean "
                                 "and the batch variance"),
                      ("no_mean", "the path through the batch mean is missing"),
                      ("no_variance", "the path through the batch variance is missing")):
        if close(got, v[key]):
            return what
    return False


MISTAKES_3 = (
    Mistake("bessel", "the forward divides the variance by n-1 (Bessel's correction): the variance term has "
            "n/(n-1) * bnraw * (dhpreact * bnraw).sum(0)", _bn_bessel),
    Mistake("missing_branch", "hprebn is used three times (directly, in the mean, in the variance): add all paths",
            _bn_branch),
    Mistake("scale", "the answer is a constant multiple of the right one", _scale_named),
)


# -- exercise 4: tanh, embedding, the whole step, training --------------------------------------------------

def tanh_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, seed, n, width, dtype, label):
        g = torch.Generator().manual_seed(seed)
        hpreact = torch.randn(n, width, generator=g, dtype=dtype) * 2
        hpreact[0, :4] = torch.tensor([12.0, -12.0, 30.0, 0.0], dtype=dtype)  # saturated and zero units
        return Case(case_id, hidden, {"h": torch.tanh(hpreact), "dh": torch.randn(n, width, generator=g, dtype=dtype),
                                      "hpreact": hpreact}, info={"hpreact": hpreact}, label=label)
    out = [case("public-0", False, 0, BATCH_SIZE, N_HIDDEN, torch.float32, "float32, batch 32")]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 2)):
        n, width = ((57, 64), (7, 100))[i]
        out.append(case(f"hidden-{i}", True, seed, n, width, torch.float64, f"float64, batch {n}"))
    return out


def tanh_truth(case: Case) -> dict:
    with torch.enable_grad():
        hpreact = case.info["hpreact"].clone().requires_grad_(True)
        backward(torch.tanh(hpreact), case.inputs["dh"])
    return {"hpreact": hpreact.grad}


def _tanh_no_chain(got, exp, case=None, **_):
    return close(got, 1 - case.inputs["h"] ** 2)


def _tanh_wrong_derivative(got, exp, case=None, **_):
    h, dh = case.inputs["h"], case.inputs["dh"]
    for wrong, what in (((1 - h) ** 2 * dh, "(1 - h)**2 is not 1 - h**2"),
                        ((1 - torch.tanh(h) ** 2) * dh, "h is already tanh(hpreact): use 1 - h**2"),
                        (h * dh, "the derivative of tanh is 1 - tanh**2 = 1 - h**2")):
        if close(got, wrong):
            return what
    return False


MISTAKES_TANH = (
    Mistake("chain_rule", "that is the local derivative only: multiply it by the upstream gradient dh", _tanh_no_chain),
    Mistake("tanh_derivative", "d tanh(x)/dx = 1 - tanh(x)**2 = 1 - h**2", _tanh_wrong_derivative),
)


def emb_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, seed, n, num, d, dtype, lacks_last, label):
        Xb, _ = names_batch(seed, n, lacks_last)
        if num != VOCAB_SIZE:
            Xb = torch.randint(0, num - (1 if lacks_last else 0), Xb.shape, generator=torch.Generator().manual_seed(seed))
        demb = torch.randn(n, Xb.shape[1], d, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
        # C is given for `torch.zeros_like(C)` (the lecture's line): its values do not enter the gradient.
        C = torch.randn(num, d, generator=torch.Generator().manual_seed(seed + 2), dtype=dtype)
        return Case(case_id, hidden, {"Xb": Xb, "demb": demb, "num_embeddings": num, "C": C}, info={"Xb": Xb},
                    label=label)
    out = [case("public-0", False, 42, BATCH_SIZE, VOCAB_SIZE, N_EMBD, torch.float32, True,
                "float32, batch 32, no 'z' in the batch")]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 3)):
        n, num, d, lacks = ((57, 27, 10, False), (7, 27, 6, True), (32, 40, 16, True))[i]
        out.append(case(f"hidden-{i}", True, seed, n, num, d, torch.float64, lacks, f"float64, batch {n}"))
    return out


def emb_truth(case: Case) -> dict:
    x = case.inputs
    with torch.enable_grad():
        C = torch.zeros(x["num_embeddings"], x["demb"].shape[-1], dtype=x["demb"].dtype, requires_grad=True)
        backward(C[x["Xb"]], x["demb"])
    return {"C": C.grad}


MISTAKES_EMB = (
    Mistake("onehot_num_classes", "F.one_hot(Xb) without num_classes=num_embeddings has only as many classes as "
            "the largest index in this batch", _onehot_shrunk),
    Mistake("missing_branch", "a row of C picked several times by Xb must get the SUM of their gradients "
            "(`+=`, `index_add_`); `dC[Xb] = demb` keeps only one", lambda got, exp, case=None, **_:
            _index_assigned(got, exp, case)),
)


STEP_ORDER = ("loss", "W2", "b2", "bngain", "bnbias", "W1", "b1", "C")


def fb_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    out = []
    for case in model_cases(seeds, exercise_id):
        fwd: Forward = case.info["forward"]
        params = {name: fwd.values[name].clone() for name in PARAMETER_NAMES}
        out.append(Case(case.id, case.hidden, {"params": params, "Xb": fwd.k.Xb, "Yb": fwd.k.Yb}, info=case.info,
                        label=case.label))
    return out


def fb_truth(case: Case) -> dict:
    fwd: Forward = case.info["forward"]
    return {"loss": fwd.values["loss"], **{name: fwd.grads[name] for name in STEP_ORDER[1:]}}


def _recorded(outputs: dict, helper: str) -> tuple[list, object] | None:
    """(tensor arguments in the helper's parameter order, output) of the student's call of `helper`."""
    calls = outputs.get("calls") if isinstance(outputs.get("calls"), dict) else {}
    rec = calls.get(helper)
    if not isinstance(rec, dict) or not isinstance(rec.get("args"), dict):
        return None
    return list(rec["args"].values()), rec.get("out")


def _helper_right(helper: str, args: list, out, like: torch.Tensor) -> bool:
    """Is the student's helper right on the inputs it was given (the grader's formula on those inputs)?"""
    try:
        if helper == "cross_entropy_backward":
            logits, Yb = args[0], args[1]
            right = (torch.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1]).to(logits.dtype)) / logits.shape[0]
        elif helper == "tanh_backward":
            h, dh = args[0], args[1]
            right = (1 - h ** 2) * dh
        elif helper == "batchnorm_backward":
            dh, gain, raw, inv = args[:4]
            n = dh.shape[0]
            right = gain * inv / n * (n * dh - dh.sum(0) - n / (n - 1) * raw * (dh * raw).sum(0))
        else:
            Xb, demb = args[0], args[1]
            right = torch.zeros(like.shape, dtype=demb.dtype).index_add_(0, Xb.reshape(-1), demb.reshape(-1, like.shape[1]))
    except (IndexError, RuntimeError, TypeError, AttributeError):
        return False
    return close(out, right, scale=_amax(right) or 1.0)


def fb_locals(fwd: Forward, outputs: dict) -> dict:
    """For each parameter gradient: (the right backward steps of forward_backward applied to the outputs of
    the student's own helpers, the helpers it depends on), where the student called them and the glue
    between them (dh = dlogits @ W2.T, ...) fed each the right input. Recording is no truth: the grader
    judges the records."""
    V, out, deps = fwd.values, {}, []
    ce = _recorded(outputs, "cross_entropy_backward")
    dlogits = _usable(ce[1], V["logits"]) if ce else None
    if dlogits is None:
        return out
    deps.append(("cross_entropy_backward", _helper_right("cross_entropy_backward", *ce, V["logits"])))
    out["W2"], out["b2"] = (V["h"].T @ dlogits, list(deps)), (dlogits.sum(0), list(deps))
    th = _recorded(outputs, "tanh_backward")
    if not th or len(th[0]) < 2 or not close(th[0][1], dlogits @ V["W2"].T):
        return out
    dhpreact = _usable(th[1], V["hpreact"])
    if dhpreact is None:
        return out
    deps.append(("tanh_backward", _helper_right("tanh_backward", *th, V["hpreact"])))
    out["bngain"] = ((V["bnraw"] * dhpreact).sum(0, keepdim=True), list(deps))
    out["bnbias"] = (dhpreact.sum(0, keepdim=True), list(deps))
    bn = _recorded(outputs, "batchnorm_backward")
    if not bn or len(bn[0]) < 4 or not close(bn[0][0], dhpreact):
        return out
    dhprebn = _usable(bn[1], V["hprebn"])
    if dhprebn is None:
        return out
    deps.append(("batchnorm_backward", _helper_right("batchnorm_backward", *bn, V["hprebn"])))
    out["W1"], out["b1"] = (V["embcat"].T @ dhprebn, list(deps)), (dhprebn.sum(0), list(deps))
    em = _recorded(outputs, "embedding_backward")
    if not em or len(em[0]) < 2 or not close(em[0][1], (dhprebn @ V["W1"].T).view(V["emb"].shape)):
        return out
    dC = _usable(em[1], V["C"])
    if dC is not None:
        deps.append(("embedding_backward", _helper_right("embedding_backward", *em, V["C"])))
        out["C"] = (dC, list(deps))
    return out


def judge_forward_backward(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """Each parameter gradient globally, and locally: where it is wrong only because a helper it calls is
    (the student's cross_entropy_backward, tanh_backward, batchnorm_backward, embedding_backward, each
    graded in its own exercise), it keeps its points: "correct; depends on X, which is wrong"."""
    fwd: Forward = case.info["forward"]
    raised = outputs.get("raised") if isinstance(outputs.get("raised"), dict) else None
    locals_ = fb_locals(fwd, outputs)
    comparisons = []
    calls = outputs.get("calls") if isinstance(outputs.get("calls"), dict) else {}
    seen = {**{n: outputs.get(n) for n in STEP_ORDER[1:]},
            **{h: rec.get("out") for h, rec in calls.items() if isinstance(rec, dict)}}
    tolerance, precision_note = carried_precision(seen, list(seen), fwd.values["loss"].dtype)
    for name in STEP_ORDER:
        got = outputs.get(name)
        if raised and got is None:
            error = str(raised.get("error", "an exception"))
            error = error.split(":", 1)[0] if case.hidden else error
            comparisons.append(Comparison(name, ERROR, expected_shape=tuple(truth[name].shape), mistake="exception",
                                          message=f"not reached: {error} at line {raised.get('line')}"))
            continue
        c = compare(name, got, truth[name], scale=None if name == "loss" else global_scale(fwd, name),
                    tolerance=None if name == "loss" else tolerance)
        if precision_note and name != "loss" and "precision" not in c.message and c.verdict != NOT_IMPLEMENTED:
            c.message = "; ".join(m for m in (c.message, precision_note) if m)
        if name != "loss":
            c.local_verdict = c.verdict if c.passed else None
        if not c.passed and name in locals_ and c.verdict != NOT_IMPLEMENTED:
            expected, deps = locals_[name]
            wrong = [helper for helper, right in deps if not right]
            lc = compare(name, got, expected, scale=max(_amax(expected), global_scale(fwd, name)), tolerance=tolerance)
            informative = not close(torch.zeros_like(expected), expected, scale=max(_amax(expected), 1e-30))
            if lc.passed and wrong and informative:
                c.local_verdict = lc.verdict
                c.message = f"correct; depends on {', '.join(wrong)}, which is wrong" + (f" ({c.message})" if c.message else "")
                c.details["depends_on"] = wrong
            elif not lc.passed:
                c.local_verdict = WRONG
        comparisons.append(c)
    return comparisons


def _fb_locate(got, exp, case=None, name=None, context=None, **_):
    """Which of the student's functions the error is in, from which gradients are right: the parameter
    gradients are taken at different depths of the backward pass."""
    g, e = as_tensor(got), as_tensor(exp)
    if g is None or g.shape != e.shape or close(-g.to(e.dtype), e):
        return False  # shape and sign mistakes have their own, more precise hints
    fwd: Forward = case.info["forward"]
    outputs = (context or {}).get("outputs") or {}
    right = lambda key: close(outputs.get(key), fwd.grads[key], scale=global_scale(fwd, key))  # noqa: E731
    if name in ("W2", "b2"):
        return "dlogits comes first: check cross_entropy_backward (exercise 2)"
    if name in ("bngain", "bnbias") and right("W2"):
        return "dW2 is right, so dlogits is: check dh = dlogits @ W2.T and tanh_backward"
    if name in ("W1", "b1") and right("bngain") and right("bnbias"):
        return "dbngain and dbnbias are right, so dhpreact is: check batchnorm_backward (exercise 3)"
    if name == "C" and right("W1"):
        return "dW1 is right, so dhprebn is: check dembcat = dhprebn @ W1.T and embedding_backward"
    return False


def _fb_depends(got, exp, case=None, name=None, context=None, **_):
    fwd: Forward = case.info["forward"]
    found = fb_locals(fwd, (context or {}).get("outputs") or {}).get(name)
    if found is None:
        return False
    expected, deps = found
    wrong = [helper for helper, right in deps if not right]
    ok = wrong and close(got, expected, scale=max(_amax(expected), global_scale(fwd, name)))
    return bool(ok) and f"{', '.join(wrong)} is wrong: fix it in its own exercise; this step keeps its points"


MISTAKES_FB = (
    Mistake("depends_on", "this step is right on what your helper returned", _fb_depends),
    Mistake("onehot_num_classes", MISTAKES_EMB[0].hint, _onehot_shrunk, checks=("C",)),
    Mistake("scale", "the answer is a constant multiple of the right one", _scale_named),
    Mistake("located", "the gradients before this one are right, which narrows down where the error is",
            _fb_locate),
)


TRAIN_STEPS, TRAIN_LR = 40, 0.1


def train_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    X, Y = _examples()
    out = [Case("public-0", False, {"params": init_params(LECTURE_SEED), "X": X[:4000], "Y": Y[:4000],
                                    "steps": TRAIN_STEPS, "lr": TRAIN_LR, "batch_size": BATCH_SIZE, "seed": 0},
                label=f"float32, {TRAIN_STEPS} steps of SGD, lr {TRAIN_LR}")]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 1)):
        params = init_params(seed, dtype=torch.float64)
        out.append(Case(f"hidden-{i}", True, {"params": params, "X": X[4000:8000], "Y": Y[4000:8000],
                                              "steps": TRAIN_STEPS, "lr": TRAIN_LR, "batch_size": 20, "seed": seed},
                        label=f"float64, {TRAIN_STEPS} steps, batch 20"))
    return out


def train_truth(case: Case) -> dict:
    """The same run (same batches: the template fixes how they are drawn) with autograd's gradients."""
    x = case.inputs
    params = {k: v.clone() for k, v in x["params"].items()}
    g = torch.Generator().manual_seed(x["seed"])
    losses = []
    for _ in range(x["steps"]):
        ix = torch.randint(0, x["X"].shape[0], (x["batch_size"],), generator=g)
        fwd = run_forward(params, x["X"][ix], x["Y"][ix])
        for name in PARAMETER_NAMES:
            params[name] -= x["lr"] * fwd.grads[name]
        losses.append(float(fwd.values["loss"]))
    return {"losses": torch.tensor(losses, dtype=torch.float64), "lowers_loss": 1.0}


# The loss curve against autograd's trajectory, tight enough that a wrong backward is never "the true
# trajectory". Measured (max relative difference over the 40 steps, public float32 and hidden float64):
#   correct, written differently (reference, loop embedding into float32 `torch.zeros(C.shape)`, softmax -
#   one_hot, 1-tanh(hpreact)**2, batchnorm by its chain):  <= 2.1e-7 (float32), <= 6.8e-11 (float64)
#   n/(n-1) dropped in batchnorm_backward (the smallest catalogued mistake):  1.98e-5 and 1.82e-5
# 2e-6 relative sits ~10x from both.
TRAIN_TOLERANCE = Tolerance(rtol=2e-6, atol=1e-7)


def _batches(x: dict) -> list:
    """The batch indices the template's loop draws: its generator, seeded with the case's seed."""
    g = torch.Generator().manual_seed(x["seed"])
    return [torch.randint(0, x["X"].shape[0], (x["batch_size"],), generator=g) for _ in range(x["steps"])]


def loop_verdict(case: Case, outputs: dict) -> tuple[str, str]:
    """Local verdict of train: every step's update applied correctly to the student's own gradients (as
    their forward_backward returned them), on the right batch, with the losses reported as computed. A
    wrong backward does not fail this; a loop mistake (update sign, a skipped parameter, the learning rate
    misapplied, a stale batch) does. Gradients that are all zero or constant tell nothing about the update."""
    x, steps = case.inputs, outputs.get("steps")
    if not isinstance(steps, list) or not steps:
        return WRONG, "train did not call forward_backward, so its updates cannot be judged on your own gradients"
    if len(steps) != x["steps"]:
        return WRONG, f"forward_backward was called {len(steps)} times for {x['steps']} steps"
    final = outputs.get("final") if isinstance(outputs.get("final"), dict) else {}
    losses = as_tensor(outputs.get("losses"))
    informative = False
    for k, (step, ix) in enumerate(zip(steps, _batches(x))):
        if not (torch.equal(as_tensor(step.get("Xb")), x["X"][ix]) if as_tensor(step.get("Xb")) is not None else False) \
                or not torch.equal(as_tensor(step.get("Yb")), x["Y"][ix]):
            return WRONG, f"step {k}: the batch is not X[ix], Y[ix] with ix drawn from the loop's generator (a stale batch?)"
        after = steps[k + 1]["params"] if k + 1 < len(steps) else final
        for name in PARAMETER_NAMES:
            before, grad, now = (as_tensor(step["params"].get(name)), as_tensor(step["grads"].get(name)),
                                 as_tensor(after.get(name)))
            if before is None or grad is None or now is None or grad.numel() != before.numel():
                return WRONG, f"step {k}: no gradient or parameter {name} to update"
            grad = grad.reshape(before.shape)
            flat = grad.flatten()
            informative |= bool((flat != flat[0]).any())
            want = before - x["lr"] * grad.to(before.dtype)
            if not close(now, want, scale=max(_amax(before), 1e-3)):
                if close(now, before):
                    return WRONG, f"step {k}: {name} was not updated (p -= lr * grad for every parameter)"
                if close(now, before + x["lr"] * grad.to(before.dtype), scale=max(_amax(before), 1e-3)):
                    return WRONG, f"step {k}: {name} moved up the gradient: the update is p -= lr * grad"
                return WRONG, f"step {k}: {name} is not p - lr * grad (the learning rate misapplied?)"
        loss = as_tensor(step.get("loss"))
        if losses is None or losses.numel() <= k or loss is None or not close(losses[k], loss.to(torch.float64)):
            return WRONG, f"step {k}: the loss reported is not the loss forward_backward returned"
    if not informative:
        return WRONG, "your gradients are all constant: the update cannot be judged on them"
    return EXACT, "every step's update is right on your own gradients"


def judge_train(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    losses = outputs.get("losses")
    curve = compare("losses", losses, truth["losses"], tolerance=TRAIN_TOLERANCE)
    t = as_tensor(losses)
    if t is None or t.dim() != 1 or t.numel() < 10:
        lowers = Comparison("lowers_loss", NOT_IMPLEMENTED if curve.verdict == NOT_IMPLEMENTED else WRONG,
                            message="train must return the list of the losses of every step")
    else:
        first, last = float(t[:5].mean()), float(t[-5:].mean())
        ok = last < first - 0.1
        advice = "" if ok else ": the loss does not go down; check the update (p -= lr * grad) and the gradients"
        lowers = Comparison("lowers_loss", EXACT if ok else WRONG,
                            message=f"mean loss of the first 5 steps {first:.3f}, of the last 5 {last:.3f}{advice}")
    if curve.verdict != NOT_IMPLEMENTED:
        verdict, why = loop_verdict(case, outputs)
        for c in (curve, lowers):
            c.local_verdict = verdict if not c.passed else c.verdict
            if not c.passed:
                c.message = f"{c.message}; the loop: {why}" if verdict == WRONG else \
                    f"{c.message}; correct loop: {why}, so a wrong backward costs only its own exercises"
    return [curve, lowers]


# -- the exercises ---------------------------------------------------------------------------------------

def _ex(entry, points, cases, driver, truth, title, **kw) -> Exercise:
    """An exercise of this assignment. Its id is written here once: the case builder gets it from here
    (`cases(seeds, exercise_id)`), so the hidden seeds follow the id and cannot drift from it."""
    exercise_id = f"{MODULE}.{entry}"
    if "judge" in kw:
        kw["judge"] = single_threaded(kw["judge"])
    kw["mistakes"] = tuple(Mistake(m.id, m.hint, single_threaded(m.matches), m.checks) for m in kw.get("mistakes", ()))
    return Exercise(id=exercise_id, module=MODULE, entry=entry, points=points,
                    cases=single_threaded(partial(cases, exercise_id=exercise_id)),
                    driver=f"{__name__}.student_side:{driver}", truth=single_threaded(truth), title=title, forbid_autograd=True,
                    time_limit=kw.pop("time_limit", 20.0), **kw)


EXERCISES = [
    _ex("manual_backward", 26.0, model_cases, "drive_manual_backward",
        lambda case: dict(case.info["forward"].grads), "exercise 1: backprop through every step",
        judge=judge_manual_backward, mistakes=MISTAKES_1),
    _ex("cross_entropy_backward", 4.0, ce_cases, "drive_cross_entropy", ce_truth,
        "exercise 2: cross entropy backward in one go", mistakes=MISTAKES_2),
    _ex("batchnorm_backward", 4.0, bn_cases, "drive_batchnorm", bn_truth, "exercise 3: batchnorm backward in one go",
        judge=judge_batchnorm, mistakes=MISTAKES_3),
    _ex("tanh_backward", 2.0, tanh_cases, "drive_tanh", tanh_truth, "exercise 4: tanh backward",
        mistakes=MISTAKES_TANH),
    _ex("embedding_backward", 2.0, emb_cases, "drive_embedding", emb_truth, "exercise 4: embedding backward",
        mistakes=MISTAKES_EMB),
    _ex("forward_backward", 8.0, fb_cases, "drive_forward_backward", fb_truth,
        "exercise 4: a whole training step by hand", judge=judge_forward_backward, mistakes=MISTAKES_FB),
    _ex("train", 4.0, train_cases, "drive_train", train_truth, "exercise 4: train with your backward",
        judge=judge_train, time_limit=60.0),
]
