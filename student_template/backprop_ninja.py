"""Backprop ninja: backpropagate by hand through a 2-layer MLP with batchnorm (Karpathy, makemore part 4).

The forward pass is given, chunked into small named steps. Your job is the backward pass, written as
PyTorch tensor code without autograd:

  exercise 1  `manual_backward(ctx)`: the gradient of the loss for every intermediate tensor, step by step
              (fill one `dX = None  # TODO` at a time; `make check` grades each tensor as soon as it is done)
  exercise 2  `cross_entropy_backward(logits, Yb)`: dlogits in one expression
  exercise 3  `batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv)`: dhprebn in one expression
  exercise 4  `tanh_backward`, `embedding_backward`, then `forward_backward` and `train`: the whole
              training step with your backward, to train the model and sample names

The names are the lecture's (`n`, `F`, `C`, `hpreact`, `logprobs`...), so its lines can be pasted as
they are. Each function is graded on its own: a right `forward_backward` that calls a wrong helper keeps
its points.

Run this file (`python backprop_ninja.py`) to compare each of your gradients with PyTorch's, the way
the lecture does with `cmp('logprobs', dlogprobs, logprobs)`.
"""
from types import SimpleNamespace

import torch
import torch.nn.functional as F

VOCAB_SIZE = 27   # '.' and a-z
BLOCK_SIZE = 3    # characters of context
N_EMBD = 10       # embedding dimensions per character
N_HIDDEN = 64     # neurons in the hidden layer
BATCH_SIZE = 32
BN_EPS = 1e-5
vocab_size = VOCAB_SIZE  # the lecture's global name, for its lines that use it (`num_classes=vocab_size`)

PARAMETER_NAMES = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")
# Every tensor exercise 1 asks for, in the order of the backward pass.
GRADIENT_NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes",
                  "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar",
                  "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C")


# -- given: parameters and the forward pass ----------------------------------------------------------------

def init_params(seed=2147483647, vocab_size=VOCAB_SIZE, n_embd=N_EMBD, block_size=BLOCK_SIZE,
                n_hidden=N_HIDDEN, dtype=torch.float32):
    """The lecture's initialisation. Biases and batchnorm parameters are small random numbers, not the
    usual zeros and ones, so that a wrong gradient cannot hide behind a zero."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn((vocab_size, n_embd), generator=g, dtype=dtype)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g, dtype=dtype) * (5 / 3) / ((n_embd * block_size) ** 0.5)
    b1 = torch.randn(n_hidden, generator=g, dtype=dtype) * 0.1  # useless with batchnorm after it: just for fun
    W2 = torch.randn((n_hidden, vocab_size), generator=g, dtype=dtype) * 0.1
    b2 = torch.randn(vocab_size, generator=g, dtype=dtype) * 0.1
    bngain = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1
    return dict(C=C, W1=W1, b1=b1, W2=W2, b2=b2, bngain=bngain, bnbias=bnbias)


def forward(params, Xb, Yb):
    """The forward pass in the lecture's small steps. Returns every tensor by name (attribute access:
    `ctx.logprobs`), with the parameters, `n`, `Xb`, `Yb` and the `loss`."""
    C, W1, b1, W2, b2, bngain, bnbias = (params[k] for k in PARAMETER_NAMES)
    n = Xb.shape[0]
    emb = C[Xb]                                  # embed the characters into vectors
    embcat = emb.view(emb.shape[0], -1)          # concatenate the vectors
    # Linear layer 1
    hprebn = embcat @ W1 + b1                    # hidden layer pre-activation
    # BatchNorm layer
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdim=True)  # Bessel's correction: divide by n-1, not n
    bnvar_inv = (bnvar + BN_EPS)**-0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    # Non-linearity
    h = torch.tanh(hpreact)                      # hidden layer
    # Linear layer 2
    logits = h @ W2 + b2                         # output layer
    # cross entropy loss (same as F.cross_entropy(logits, Yb))
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes           # subtract max for numerical stability
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1              # (1.0 / counts_sum) would not be bitwise equal to autograd
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()
    return SimpleNamespace(**params, n=n, Xb=Xb, Yb=Yb, emb=emb, embcat=embcat, hprebn=hprebn, bnmeani=bnmeani,
                           bndiff=bndiff, bndiff2=bndiff2, bnvar=bnvar, bnvar_inv=bnvar_inv, bnraw=bnraw,
                           hpreact=hpreact, h=h, logits=logits, logit_maxes=logit_maxes, norm_logits=norm_logits,
                           counts=counts, counts_sum=counts_sum, counts_sum_inv=counts_sum_inv, probs=probs,
                           logprobs=logprobs, loss=loss)


# -- exercise 1: backprop through the whole thing, one tensor at a time ------------------------------------

def manual_backward(ctx):
    """The gradient of `ctx.loss` with respect to every tensor of GRADIENT_NAMES, keyed by name.

    `ctx` holds every tensor of the forward pass by its name (`ctx.probs`, `ctx.W2`...) and `ctx.n`,
    `ctx.Xb`, `ctx.Yb`; they are bound below to the lecture's names, so the lecture's lines work as they
    are. Each gradient must have the shape of its tensor.
    """
    n, Xb, Yb = ctx.n, ctx.Xb, ctx.Yb
    C, W1, b1, W2, b2, bngain, bnbias = ctx.C, ctx.W1, ctx.b1, ctx.W2, ctx.b2, ctx.bngain, ctx.bnbias
    batch_size, block_size, n_embd = n, Xb.shape[1], C.shape[1]  # the lecture's globals, for this batch
    emb, embcat, hprebn = ctx.emb, ctx.embcat, ctx.hprebn
    bnmeani, bndiff, bndiff2, bnvar, bnvar_inv, bnraw = ctx.bnmeani, ctx.bndiff, ctx.bndiff2, ctx.bnvar, ctx.bnvar_inv, ctx.bnraw
    hpreact, h, logits = ctx.hpreact, ctx.h, ctx.logits
    logit_maxes, norm_logits, counts, counts_sum = ctx.logit_maxes, ctx.norm_logits, ctx.counts, ctx.counts_sum
    counts_sum_inv, probs, logprobs, loss = ctx.counts_sum_inv, ctx.probs, ctx.logprobs, ctx.loss
    # loss = -logprobs[range(n), Yb].mean(): only the n picked entries matter, each with weight -1/n
    dlogprobs = None  # TODO
    # logprobs = probs.log()
    dprobs = None  # TODO
    # probs = counts * counts_sum_inv: counts_sum_inv (n,1) was broadcast across the row, so sum it back
    dcounts_sum_inv = None  # TODO
    # counts_sum_inv = counts_sum**-1
    dcounts_sum = None  # TODO
    # counts is used twice: in probs = counts * counts_sum_inv and in counts_sum = counts.sum(1): add both
    dcounts = None  # TODO
    # counts = norm_logits.exp()
    dnorm_logits = None  # TODO
    # norm_logits = logits - logit_maxes: logit_maxes (n,1) was broadcast
    dlogit_maxes = None  # TODO
    # logits is used twice: in norm_logits directly, and through the max (which routes to the argmax)
    dlogits = None  # TODO
    # logits = h @ W2 + b2
    dh = None  # TODO
    dW2 = None  # TODO
    db2 = None  # TODO
    # h = tanh(hpreact)
    dhpreact = None  # TODO
    # hpreact = bngain * bnraw + bnbias: bngain and bnbias (1,64) were broadcast over the batch
    dbngain = None  # TODO
    dbnbias = None  # TODO
    dbnraw = None  # TODO
    # bnraw = bndiff * bnvar_inv: bnvar_inv (1,64) was broadcast
    dbnvar_inv = None  # TODO
    # bnvar_inv = (bnvar + 1e-5)**-0.5
    dbnvar = None  # TODO
    # bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True): a sum in the forward is a broadcast in the backward
    dbndiff2 = None  # TODO
    # bndiff is used twice: in bnraw and in bndiff2 = bndiff**2
    dbndiff = None  # TODO
    # bndiff = hprebn - bnmeani: bnmeani (1,64) was broadcast
    dbnmeani = None  # TODO
    # hprebn is used twice: in bndiff directly, and through the mean
    dhprebn = None  # TODO
    # hprebn = embcat @ W1 + b1
    dembcat = None  # TODO
    dW1 = None  # TODO
    db1 = None  # TODO
    # embcat = emb.view(n, -1): undo the view
    demb = None  # TODO
    # emb = C[Xb]: every row of C picked by Xb gets its gradient added (a row picked twice gets two)
    dC = None  # TODO
    return dict(logprobs=dlogprobs, probs=dprobs, counts_sum_inv=dcounts_sum_inv, counts_sum=dcounts_sum,
                counts=dcounts, norm_logits=dnorm_logits, logit_maxes=dlogit_maxes, logits=dlogits, h=dh, W2=dW2,
                b2=db2, hpreact=dhpreact, bngain=dbngain, bnbias=dbnbias, bnraw=dbnraw, bnvar_inv=dbnvar_inv,
                bnvar=dbnvar, bndiff2=dbndiff2, bndiff=dbndiff, bnmeani=dbnmeani, hprebn=dhprebn, embcat=dembcat,
                W1=dW1, b1=db1, emb=demb, C=dC)


# -- exercise 2: cross entropy backward in one go -----------------------------------------------------------

def cross_entropy_backward(logits, Yb):
    """dloss/dlogits for loss = F.cross_entropy(logits, Yb) (the mean over the batch). `probs` and `logprobs`
    are the forward pass's, as in the lecture's notebook."""
    n = batch_size = logits.shape[0]
    probs = F.softmax(logits, 1)
    logprobs = probs.log()
    dlogits = None  # TODO
    return dlogits


# -- exercise 3: batchnorm backward in one go ---------------------------------------------------------------

def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
    """dloss/dhprebn through hpreact = bngain * (hprebn - mean) / sqrt(var + eps) + bnbias, where var is
    the Bessel-corrected batch variance (divided by n-1), as in the forward pass."""
    n = dhpreact.shape[0]
    dhprebn = None  # TODO
    return dhprebn


# -- exercise 4: the pieces of a whole training step ---------------------------------------------------------

def tanh_backward(h, dh, hpreact=None):
    """dloss/dhpreact for h = tanh(hpreact), given h, dloss/dh and hpreact."""
    dhpreact = None  # TODO
    return dhpreact


def embedding_backward(Xb, demb, C):
    """dloss/dC for emb = C[Xb] (`C` is given for its shape and dtype: `torch.zeros_like(C)`). A row
    picked several times gets the sum of their gradients."""
    dC = None  # TODO
    return dC


def forward_backward(params, Xb, Yb):
    """One training step's forward and manual backward: (loss, grads), with grads keyed like params.

    Uses the compact forward (cross entropy and batchnorm in one go) and your exercises 2-4 for the
    backward."""
    C, W1, b1, W2, b2, bngain, bnbias = (params[k] for k in PARAMETER_NAMES)
    n = Xb.shape[0]
    batch_size, block_size, n_embd = n, Xb.shape[1], C.shape[1]  # the lecture's globals, for this batch
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
    # YOUR CODE HERE
    raise NotImplementedError()
    return loss, dict(C=dC, W1=dW1, b1=db1, W2=dW2, b2=db2, bngain=dbngain, bnbias=dbnbias)


def train(params, X, Y, steps, lr, batch_size=BATCH_SIZE, seed=0):
    """Minibatch SGD with your manual backward; updates `params` in place, returns the loss of every step.

    `parameters` is the lecture's list (the same tensors as `params`), and `grads` works both ways: by name
    (`for name, p in params.items(): p -= lr * grads[name]`) and in the order of `parameters` (the lecture's
    `for p, grad in zip(parameters, grads): p.data += -lr * grad`)."""
    g = torch.Generator().manual_seed(seed)
    parameters = [params[name] for name in PARAMETER_NAMES]
    losses = []
    for _ in range(steps):
        ix = torch.randint(0, X.shape[0], (batch_size,), generator=g)
        loss, grads = forward_backward(params, X[ix], Y[ix])
        grads = Gradients(grads)
        # YOUR CODE HERE
        raise NotImplementedError()
        losses.append(loss.item())
    return losses


class Gradients(list):
    """The gradients in the order of PARAMETER_NAMES (the lecture's `grads = [dC, dW1, ...]`), also by name
    (`grads["W1"]`). Made from a dict keyed like params or from the lecture's list."""

    def __init__(self, grads):
        super().__init__(grads[name] for name in PARAMETER_NAMES) if isinstance(grads, dict) else super().__init__(grads)

    def __getitem__(self, key):
        return super().__getitem__(PARAMETER_NAMES.index(key) if isinstance(key, str) else key)


# -- given: evaluate and sample --------------------------------------------------------------------------

@torch.no_grad()
def batchnorm_stats(params, X):
    """The batchnorm mean and variance over a whole training set (the lecture's calibration step)."""
    hprebn = params["C"][X].view(X.shape[0], -1) @ params["W1"] + params["b1"]
    return hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)


@torch.no_grad()
def evaluate(params, X, Y, bnmean, bnvar):
    """The loss on (X, Y) with fixed batchnorm statistics."""
    hprebn = params["C"][X].view(X.shape[0], -1) @ params["W1"] + params["b1"]
    hpreact = params["bngain"] * (hprebn - bnmean) * (bnvar + BN_EPS)**-0.5 + params["bnbias"]
    logits = torch.tanh(hpreact) @ params["W2"] + params["b2"]
    return torch.nn.functional.cross_entropy(logits, Y).item()


@torch.no_grad()
def sample(params, bnmean, bnvar, count=10, seed=2147483647 + 10, block_size=BLOCK_SIZE, max_length=24):
    """Names drawn from the model, one character at a time (at most `max_length` of them each)."""
    g = torch.Generator().manual_seed(seed)
    itos = {0: "."} | {i + 1: c for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    out = []
    for _ in range(count):
        context, name = [0] * block_size, []
        for _ in range(max_length):  # a diverged model may never pick the '.' that ends a name
            X = torch.tensor([context])
            hprebn = params["C"][X].view(1, -1) @ params["W1"] + params["b1"]
            hpreact = params["bngain"] * (hprebn - bnmean) * (bnvar + BN_EPS)**-0.5 + params["bnbias"]
            logits = torch.tanh(hpreact) @ params["W2"] + params["b2"]
            probs = torch.softmax(logits, 1)
            if not torch.isfinite(probs).all():
                break  # NaN or inf: training diverged, there is nothing to sample
            ix = torch.multinomial(probs, 1, generator=g).item()
            if ix == 0:
                break
            name.append(itos[ix])
            context = context[1:] + [ix]
        out.append("".join(name))
    return out


if __name__ == "__main__":
    # `python backprop_ninja.py`: the lecture's check (your gradients next to PyTorch's, tensor by tensor),
    # then its last cells: train with your backward, evaluate, sample names from the trained model.
    # BACKPROP_NINJA_STEPS sets the number of training steps (default 2000; the lecture ran 200,000).
    import os
    import traceback

    from autograder import cmp
    from autograder.core.data import datasets

    (Xtr, Ytr), (Xdev, Ydev), _ = datasets(BLOCK_SIZE)
    g = torch.Generator().manual_seed(42)
    ix = torch.randint(0, Xtr.shape[0], (BATCH_SIZE,), generator=g)
    params = init_params()
    for p in params.values():
        p.requires_grad_(True)
    ctx = forward(params, Xtr[ix], Ytr[ix])
    for name in GRADIENT_NAMES:
        if name not in PARAMETER_NAMES:
            getattr(ctx, name).retain_grad()
    ctx.loss.backward()
    print(f"loss {ctx.loss.item():.4f}")
    with torch.no_grad():
        plain = SimpleNamespace(**{k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in vars(ctx).items()})
        grads = manual_backward(plain)
    grads = grads if isinstance(grads, dict) else {}
    for name in GRADIENT_NAMES:
        cmp(name, grads.get(name, grads.get("d" + name)), getattr(ctx, name))

    steps = int(os.environ.get("BACKPROP_NINJA_STEPS", "2000"))
    print(f"\ntraining {steps} steps with your backward (exercise 4)...")
    params = init_params()
    try:
        losses = train(params, Xtr, Ytr, steps, lr=0.1)
    except NotImplementedError as exc:
        missing = traceback.extract_tb(exc.__traceback__)[-1].name
        print(f"not yet: `{missing}` is not implemented. Fill it in (exercise 4 needs cross_entropy_backward, "
              "batchnorm_backward, tanh_backward, embedding_backward, forward_backward and train), then run again.")
    else:
        k = max(1, min(100, len(losses) // 10))
        print(f"loss {sum(losses[:k]) / k:.4f} (first {k} steps) -> {sum(losses[-k:]) / k:.4f} (last {k} steps)")
        bnmean, bnvar = batchnorm_stats(params, Xtr)
        print(f"train loss {evaluate(params, Xtr, Ytr, bnmean, bnvar):.4f}, "
              f"val loss {evaluate(params, Xdev, Ydev, bnmean, bnvar):.4f}")
        print("names sampled from your model:")
        for sampled in sample(params, bnmean, bnvar, count=10):
            print("  " + sampled)
