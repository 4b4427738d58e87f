"""backprop_ninja, grader side: the model the cases and truths are made of (the lecture's forward pass as named
steps and autograd's gradients, the names data, the scales of a correct answer's rounding; shared with the
judges and mistakes), then each exercise's cases (public and hidden) and truths (PyTorch autograd).

A case builder gets its exercise's id from the Exercise (`cases(seeds, exercise_id)`): the id is written
once, in `__init__`, and the hidden seeds derive from it."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, wraps
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn.functional as F

from autograder.core.compare import as_tensor
from autograder.core.exercise import Case, Seeds
from autograder.core.truth import backward, vjp
from autograder.assignments.backprop_ninja.student_side import GRADIENT_NAMES, PARAMETER_NAMES

# -- the model ---------------------------------------------------------------------------------------------


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


def run_forward(params: dict, Xb: torch.Tensor, Yb: torch.Tensor, *, parameters_only: bool = False) -> Forward:
    """The forward pass, every gradient and the rounding scales the judges need; `parameters_only`: the
    gradients of the parameters alone and no scales (all a training run's truth needs, at half the cost)."""
    k = SimpleNamespace(n=int(Xb.shape[0]), Xb=Xb, Yb=Yb)
    with torch.enable_grad():
        values = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
        for step in STEPS:
            values[step.out] = step.fn(k, *(values[i] for i in step.ins))
            if not parameters_only:
                values[step.out].retain_grad()
        values["loss"].backward()
    grads = {name: values[name].grad.detach() for name in (PARAMETER_NAMES if parameters_only else GRADIENT_NAMES)}
    fwd = Forward(k, {name: v.detach() for name, v in values.items()}, grads)
    if not parameters_only:
        fwd.magnitudes = magnitudes(fwd)
    return fwd


@lru_cache(maxsize=None)
def _examples(block_size: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(context, next character) pairs of the first 3000 training names: plenty for batches, fast to build."""
    from autograder.core.data import build_dataset, load_names, split_words
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


# -- the cases and truths ----------------------------------------------------------------------------------


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
        # Every property a hidden case tests shows in a public one (float64, another batch size, other widths),
        # so `check` already fails what grading for credit would (a `.float()` that cannot mix dtypes,
        # a hard-coded 32, 64 or 30).
        _model_case("public-1", False, 1, 7, 7, torch.float64, n_hidden=100, n_embd=6, low_variance=True,
                    label="float64, batch 7, 100 hidden units, 6-wide embedding, some low-variance units"),
    ]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, len(HIDDEN_MODELS))):
        n, width, embd, low, lacks = HIDDEN_MODELS[i]
        cases.append(_model_case(f"hidden-{i}", True, seed, seed + 1, n, torch.float64, n_hidden=width,
                                 n_embd=embd, low_variance=low, lacks_last_char=lacks,
                                 label=f"float64, batch {n}, {width} hidden units"))
    return cases


def ce_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, logits, Yb, label):
        return Case(case_id, hidden, {"logits": logits, "Yb": Yb}, info={"n": int(Yb.shape[0]), "Yb": Yb},
                    label=label)
    lecture = run_forward(init_params(LECTURE_SEED), *names_batch(42, BATCH_SIZE, True))
    out = [case("public-0", False, lecture.values["logits"], lecture.k.Yb, "float32, batch 32, the lecture's logits")]
    # Logits up to ~1000: exp() overflows float64 (e^710 = inf), float32 all the more, unless the row's max is
    # subtracted first. float64 like the hidden cases, so a `.float()` that cannot mix dtypes shows here.
    g = torch.Generator().manual_seed(3)
    out.append(case("public-1", False, torch.randn(7, VOCAB_SIZE, generator=g, dtype=torch.float64) * 400,
                    torch.randint(0, VOCAB_SIZE, (7,), generator=g), "float64, batch 7, large logits"))
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
           case("public-1", False, 1, 7, 100, torch.float64, "float64, batch 7, 100 units")]
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


def tanh_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    def case(case_id, hidden, seed, n, width, dtype, label):
        g = torch.Generator().manual_seed(seed)
        hpreact = torch.randn(n, width, generator=g, dtype=dtype) * 2
        hpreact[0, :4] = torch.tensor([12.0, -12.0, 30.0, 0.0], dtype=dtype)  # saturated and zero units
        return Case(case_id, hidden, {"h": torch.tanh(hpreact), "dh": torch.randn(n, width, generator=g, dtype=dtype),
                                      "hpreact": hpreact}, info={"hpreact": hpreact}, label=label)
    out = [case("public-0", False, 0, BATCH_SIZE, N_HIDDEN, torch.float32, "float32, batch 32"),
           case("public-1", False, 1, 7, 100, torch.float64, "float64, batch 7, 100 units")]
    for i, seed in enumerate(seeds.hidden_seeds(exercise_id, 2)):
        n, width = ((57, 64), (7, 100))[i]
        out.append(case(f"hidden-{i}", True, seed, n, width, torch.float64, f"float64, batch {n}"))
    return out


def tanh_truth(case: Case) -> dict:
    with torch.enable_grad():
        hpreact = case.info["hpreact"].clone().requires_grad_(True)
        backward(torch.tanh(hpreact), case.inputs["dh"])
    return {"hpreact": hpreact.grad}


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
                "float32, batch 32, no 'z' in the batch"),
           case("public-1", False, 43, 7, 40, 6, torch.float64, True, "float64, batch 7, 40 rows of 6 in C")]
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


TRAIN_STEPS, TRAIN_LR = 40, 0.1


def train_cases(seeds: Seeds, exercise_id: str) -> list[Case]:
    X, Y = _examples()
    out = [Case("public-0", False, {"params": init_params(LECTURE_SEED), "X": X[:4000], "Y": Y[:4000],
                                    "steps": TRAIN_STEPS, "lr": TRAIN_LR, "batch_size": BATCH_SIZE, "seed": 0},
                label=f"float32, {TRAIN_STEPS} steps of SGD, lr {TRAIN_LR}"),
           Case("public-1", False, {"params": init_params(LECTURE_SEED + 1, dtype=torch.float64), "X": X[:4000],
                                    "Y": Y[:4000], "steps": TRAIN_STEPS, "lr": TRAIN_LR, "batch_size": 20, "seed": 1},
                label=f"float64, {TRAIN_STEPS} steps, batch 20")]
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
        fwd = run_forward(params, x["X"][ix], x["Y"][ix], parameters_only=True)
        for name in PARAMETER_NAMES:
            params[name] -= x["lr"] * fwd.grads[name]
        losses.append(float(fwd.values["loss"]))
    return {"losses": torch.tensor(losses, dtype=torch.float64), "lowers_loss": 1.0}


def _batches(x: dict) -> list:
    """The batch indices the template's loop draws: its generator, seeded with the case's seed."""
    g = torch.Generator().manual_seed(x["seed"])
    return [torch.randint(0, x["X"].shape[0], (x["batch_size"],), generator=g) for _ in range(x["steps"])]
