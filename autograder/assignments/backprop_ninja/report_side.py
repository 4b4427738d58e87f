"""backprop_ninja, the student's side of the visual report: train with the student's `train`, then sample
names from the trained model, as the lecture's last cells did. Runs in the student's process; no truth,
tolerance or hint lives here.

Two drivers, run one after the other, so that the loss curve comes back whatever sampling does: a
diverged model (NaN logits, or a '.' whose probability underflowed to 0) makes the lecture's sampling loop
run forever. The sampler here is that same loop (the same forward pass with the student's trained
parameters and the batchnorm statistics of the training set) with every name cut at `MAX_NAME_LENGTH`
characters and a deadline for all of them: bounded in length and time.
"""
from __future__ import annotations

import math
import time

MAX_NAME_LENGTH = 24         # the longest name in the data set has 15 letters
SAMPLE_SECONDS = 5.0
BN_EPS = 1e-5
ITOS = {0: "."} | {i + 1: c for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}


def drive_train(module, inputs: dict) -> dict:
    """The student's `train` on the case's data: the loss of every step, and the trained parameters."""
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
    """Names from the trained parameters (given by the grader, as `drive_train` returned them)."""
    import torch
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
