"""backprop_ninja, grader side: each exercise's cases (public and hidden) and truths (PyTorch autograd).

A case builder gets its exercise's id from the Exercise (`cases(seeds, exercise_id)`): the id is written
once, in `__init__`, and the hidden seeds derive from it."""
from __future__ import annotations


import torch
import torch.nn.functional as F

from autograder.core.exercise import Case, Seeds
from autograder.core.truth import backward
from autograder.assignments.backprop_ninja.model import (BATCH_SIZE, BN_EPS, Forward, LECTURE_SEED, N_EMBD, N_HIDDEN, VOCAB_SIZE, _examples, init_params, names_batch, run_forward)
from autograder.assignments.backprop_ninja.student_side import PARAMETER_NAMES


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
        fwd = run_forward(params, x["X"][ix], x["Y"][ix])
        for name in PARAMETER_NAMES:
            params[name] -= x["lr"] * fwd.grads[name]
        losses.append(float(fwd.values["loss"]))
    return {"losses": torch.tensor(losses, dtype=torch.float64), "lowers_loss": 1.0}


def _batches(x: dict) -> list:
    """The batch indices the template's loop draws: its generator, seeded with the case's seed."""
    g = torch.Generator().manual_seed(x["seed"])
    return [torch.randint(0, x["X"].shape[0], (x["batch_size"],), generator=g) for _ in range(x["steps"])]
