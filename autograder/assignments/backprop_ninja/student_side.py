"""backprop_ninja, the student's side: drivers that call the student's functions on one case's inputs and
return plain results. Runs in the student's process: it imports nothing of the grader (no truth,
tolerance or hint lives here)."""
from __future__ import annotations

from types import SimpleNamespace


PARAMETER_NAMES = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")


# Exercise 1's tensors in the order of the backward pass (the lecture's order): the report's order.
GRADIENT_NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
                  "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar",
                  "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C")


def drive_manual_backward(module, inputs: dict) -> dict:
    """In the student's process: call manual_backward(ctx) and return its gradients by name."""
    ctx = SimpleNamespace(**inputs)
    grads = module.manual_backward(ctx)
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
    return {"hpreact": module.tanh_backward(inputs["h"], inputs["dh"])}


def drive_embedding(module, inputs):
    return {"C": module.embedding_backward(inputs["Xb"], inputs["demb"], inputs["num_embeddings"])}


def drive_forward_backward(module, inputs):
    result = module.forward_backward(inputs["params"], inputs["Xb"], inputs["Yb"])
    if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
        raise TypeError("forward_backward must return (loss, grads) with grads a dict keyed like params")
    loss, grads = result
    return {"loss": loss, **{name: grads.get(name) for name in PARAMETER_NAMES}}


def drive_train(module, inputs):
    params = inputs["params"]
    losses = module.train(params, inputs["X"], inputs["Y"], inputs["steps"], inputs["lr"],
                          batch_size=inputs["batch_size"], seed=inputs["seed"])
    return {"losses": [float(x) for x in losses] if isinstance(losses, (list, tuple)) else losses}

