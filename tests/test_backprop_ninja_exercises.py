"""backprop_ninja: correct answers written differently pass everywhere; exercises 2-4 name their mistakes.

A submission is the reference with some functions redefined after it (a later `def` wins), so each test
changes exactly what it is about.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autograder.assignments import exercises
from autograder.core.pipeline import grade

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "reference" / "backprop_ninja.py").read_text()


def submission(tmp_path: Path, code: str, name: str = "sub") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "backprop_ninja.py").write_text(REFERENCE + "\n\n" + textwrap.dedent(code))
    return d


def grade_entries(runner, sub: Path, entries, hidden: bool):
    exs = [e for e in exercises("backprop_ninja") if e.entry in entries]
    return {e.id.split(".")[1]: e for e in grade(sub, exs, hidden=hidden, runner=runner).exercises}


# -- correct variants ------------------------------------------------------------------------------------

MANUAL_VARIANT = '''
def manual_backward(c):
    F = torch.nn.functional
    n = c.n
    dlogprobs = -F.one_hot(c.Yb, c.logprobs.shape[1]).to(c.logprobs.dtype) / n
    dprobs = dlogprobs / c.probs
    dcounts_sum_inv = torch.einsum("ij,ij->i", c.counts, dprobs).unsqueeze(1)
    dcounts_sum = -dcounts_sum_inv / c.counts_sum**2
    dcounts = dprobs * c.counts_sum_inv + dcounts_sum.expand_as(c.counts)
    dnorm_logits = c.norm_logits.exp() * dcounts
    dlogit_maxes = -dnorm_logits.sum(1, keepdim=True)
    dlogits = dnorm_logits.clone()
    dlogits[range(n), c.logits.argmax(1)] += dlogit_maxes.view(-1)
    dh = torch.einsum("nk,hk->nh", dlogits, c.W2)
    dW2 = torch.einsum("nh,nk->hk", c.h, dlogits)
    db2 = dlogits.sum(0)
    dhpreact = (1 - torch.tanh(c.hpreact)**2) * dh
    dbngain = (c.bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dbnraw = c.bngain * dhpreact
    dbnvar_inv = (c.bndiff * dbnraw).sum(0, keepdim=True)
    dbnvar = -0.5 * c.bnvar_inv**3 * dbnvar_inv
    dbndiff2 = dbnvar.expand_as(c.bndiff2) / (n - 1)
    dbndiff = c.bnvar_inv * dbnraw + 2 * c.bndiff * dbndiff2
    dbnmeani = -dbndiff.sum(0, keepdim=True)
    # dhprebn in one go (exercise 3's formula): equal to dbndiff + dbnmeani / n
    dhprebn = c.bngain * c.bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * c.bnraw * (dhpreact * c.bnraw).sum(0))
    dembcat = dhprebn @ c.W1.T
    dW1 = c.embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(c.emb.shape)
    dC = EMBEDDING(c.Xb, demb, c.C)
    return dict(logprobs=dlogprobs, probs=dprobs, counts_sum_inv=dcounts_sum_inv, counts_sum=dcounts_sum,
                counts=dcounts, norm_logits=dnorm_logits, logit_maxes=dlogit_maxes, logits=dlogits, h=dh, W2=dW2,
                b2=db2, hpreact=dhpreact, bngain=dbngain, bnbias=dbnbias, bnraw=dbnraw, bnvar_inv=dbnvar_inv,
                bnvar=dbnvar, bndiff2=dbndiff2, bndiff=dbndiff, bnmeani=dbnmeani, hprebn=dhprebn, embcat=dembcat,
                W1=dW1, b1=db1, emb=demb, C=dC)
'''

EMBEDDINGS = {
    "loop": '''
        def embedding_backward(Xb, demb, C):
            dC = torch.zeros(C.shape)  # float32 as in the lecture, also on the float64 cases
            for i in range(Xb.shape[0]):
                for j in range(Xb.shape[1]):
                    dC[Xb[i, j]] += demb[i, j]
            return dC
        ''',
    "onehot_matmul": '''
        def embedding_backward(Xb, demb, C):
            onehot = torch.nn.functional.one_hot(Xb.view(-1), num_classes=C.shape[0]).to(demb.dtype)
            return onehot.T @ demb.view(-1, demb.shape[-1])
        ''',
    "einsum": '''
        def embedding_backward(Xb, demb, C):
            onehot = torch.nn.functional.one_hot(Xb, C.shape[0]).to(demb.dtype)
            return torch.einsum("nbk,nbd->kd", onehot, demb)
        ''',
    "index_put_accumulate": '''
        def embedding_backward(Xb, demb, C):
            dC = torch.zeros_like(C)
            return dC.index_put_((Xb.reshape(-1),), demb.reshape(-1, demb.shape[-1]), accumulate=True)
        ''',
}

OTHER_VARIANTS = [
    '''
    def cross_entropy_backward(logits, Yb):
        F = torch.nn.functional
        return (F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1]).to(logits.dtype)) / logits.shape[0]

    def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
        n = dhpreact.shape[0]
        return bngain * bnvar_inv * (dhpreact - dhpreact.mean(0, keepdim=True)
                                     - bnraw * (dhpreact * bnraw).sum(0, keepdim=True) / (n - 1))

    def tanh_backward(h, dh, hpreact):
        return (1 - torch.tanh(hpreact)**2) * dh
    ''',
    '''
    def cross_entropy_backward(logits, Yb):
        n = logits.shape[0]
        e = (logits - logits.max(1, keepdim=True).values).exp()
        p = e / e.sum(1, keepdim=True)
        p[torch.arange(n), Yb] -= 1
        return p / n

    def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
        # the chain of exercise 1, from what is given
        n = dhpreact.shape[0]
        bndiff = bnraw / bnvar_inv
        dbnraw = bngain * dhpreact
        dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
        dbnvar = -0.5 * bnvar_inv**3 * dbnvar_inv
        dbndiff = bnvar_inv * dbnraw + 2 * bndiff * dbnvar / (n - 1)
        return dbndiff - dbndiff.mean(0, keepdim=True)

    def tanh_backward(h, dh, hpreact=None):
        return dh - h * h * dh
    ''',
]


@pytest.mark.parametrize("variant", sorted(EMBEDDINGS))
def test_embedding_variants_pass_everywhere(runner, tmp_path, variant):
    code = EMBEDDINGS[variant] + MANUAL_VARIANT.replace("EMBEDDING(", "embedding_backward(")
    results = grade_entries(runner, submission(tmp_path, code), ("embedding_backward", "manual_backward",
                                                                 "forward_backward"), hidden=True)
    for ex in results.values():
        bad = [(c.name, c.verdict, c.message) for c in ex.checks if not c.passed]
        assert bad == [] and ex.score == ex.max_score, ex.id


@pytest.mark.parametrize("i", range(len(OTHER_VARIANTS)))
def test_other_variants_pass_everywhere(runner, tmp_path, i):
    entries = ("cross_entropy_backward", "batchnorm_backward", "tanh_backward", "forward_backward", "train")
    results = grade_entries(runner, submission(tmp_path, OTHER_VARIANTS[i]), entries, hidden=True)
    for ex in results.values():
        bad = [(c.name, c.verdict, c.message) for c in ex.checks if not c.passed]
        assert bad == [] and ex.score == ex.max_score, ex.id


# -- each exercise's catalogue ------------------------------------------------------------------------------

MISTAKES = [
    ("cross_entropy_backward", "scale", '''
        def cross_entropy_backward(logits, Yb):
            p = torch.softmax(logits, 1)
            p[range(logits.shape[0]), Yb] -= 1
            return p
        '''),
    ("cross_entropy_backward", "sign", '''
        def cross_entropy_backward(logits, Yb):
            p = torch.softmax(logits, 1)
            p[range(logits.shape[0]), Yb] -= 1
            return -p / logits.shape[0]
        '''),
    ("cross_entropy_backward", "wrong_index", '''
        def cross_entropy_backward(logits, Yb):
            p = torch.softmax(logits, 1)
            p[:, Yb] -= 1
            return p / logits.shape[0]
        '''),
    ("cross_entropy_backward", "missing_branch", '''
        def cross_entropy_backward(logits, Yb):
            return torch.softmax(logits, 1) / logits.shape[0]
        '''),
    # issue 17: `+= 1` at the target (the term added instead of subtracted), before and after the division
    ("cross_entropy_backward", "target_sign", '''
        def cross_entropy_backward(logits, Yb):
            n = logits.shape[0]
            dlogits = F.softmax(logits, 1)
            dlogits[range(n), Yb] += 1
            dlogits /= n
            return dlogits
        '''),
    ("cross_entropy_backward", "target_sign", '''
        def cross_entropy_backward(logits, Yb):
            n = logits.shape[0]
            dlogits = F.softmax(logits, 1) / n
            dlogits[range(n), Yb] += 1
            return dlogits
        '''),
    # issue 17: tanh's derivative written with its input
    ("tanh_backward", "uses_input_not_output", '''
        def tanh_backward(h, dh, hpreact=None):
            return (1 - hpreact**2) * dh
        '''),
    ("cross_entropy_backward", "nan", '''
        def cross_entropy_backward(logits, Yb):
            e = logits.exp()  # no max subtracted: overflows for large logits
            p = e / e.sum(1, keepdim=True)
            p[range(logits.shape[0]), Yb] -= 1
            return p / logits.shape[0]
        '''),
    ("batchnorm_backward", "bessel", '''
        def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
            n = dhpreact.shape[0]
            return bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))
        '''),
    ("batchnorm_backward", "missing_branch", '''
        def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
            return bngain * bnvar_inv * dhpreact
        '''),
    ("batchnorm_backward", "scale", '''
        def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
            n = dhpreact.shape[0]
            return bngain * bnvar_inv * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
        '''),
    ("batchnorm_backward", "bngain_missing", '''
        def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
            n = dhpreact.shape[0]
            return bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
        '''),
    ("tanh_backward", "chain_rule", '''
        def tanh_backward(h, dh):
            return 1 - h**2
        '''),
    ("tanh_backward", "tanh_derivative", '''
        def tanh_backward(h, dh):
            return (1 - h)**2 * dh
        '''),
    ("tanh_backward", "sign", '''
        def tanh_backward(h, dh):
            return (h**2 - 1) * dh
        '''),
    ("embedding_backward", "onehot_num_classes", '''
        def embedding_backward(Xb, demb, num_embeddings):
            return torch.einsum("nbk,nbd->kd", torch.nn.functional.one_hot(Xb).to(demb.dtype), demb)
        '''),
    ("embedding_backward", "missing_branch", '''
        def embedding_backward(Xb, demb, num_embeddings):
            dC = torch.zeros(num_embeddings, demb.shape[-1], dtype=demb.dtype)
            dC[Xb] = demb
            return dC
        '''),
    ("embedding_backward", "transposed", '''
        def embedding_backward(Xb, demb, num_embeddings):
            dC = torch.zeros(num_embeddings, demb.shape[-1], dtype=demb.dtype)
            dC.index_add_(0, Xb.reshape(-1), demb.reshape(-1, demb.shape[-1]))
            return dC.T
        '''),
]


@pytest.mark.parametrize("entry,mistake,code", MISTAKES, ids=[f"{e}-{m}" for e, m, _ in MISTAKES])
def test_catalogue_mistakes(runner, tmp_path, entry, mistake, code):
    ex = grade_entries(runner, submission(tmp_path, code), (entry,), hidden=False)[entry]
    (check,) = ex.checks
    assert check.verdict == "wrong" and check.points < check.max_points
    assert check.mistake == mistake, (check.mistake, check.hint, check.message)
    assert check.hint


def test_forward_backward_wrong_batchnorm_step(runner, tmp_path):
    code = next(c for e, m, c in MISTAKES if (e, m) == ("batchnorm_backward", "bessel"))  # no n/(n-1)
    ex = grade_entries(runner, submission(tmp_path, code), ("forward_backward",), hidden=False)["forward_backward"]
    verdicts = {c.name: c.correct for c in ex.checks}  # right against the true gradient
    assert verdicts == {"loss": True, "W2": True, "b2": True, "bngain": True, "bnbias": True,
                        "W1": False, "b1": True, "C": False}  # db1 is 0 either way: batchnorm cancels b1
    # wrong globally, right on the student's own batchnorm_backward: its points are kept
    assert ex.score == ex.max_score and ex.first_wrong_step is None


def test_autograd_in_forward_backward_is_refused(runner, tmp_path):
    code = '''
    def forward_backward(params, Xb, Yb):
        for p in params.values():
            p.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(forward(params, Xb, Yb).logits, Yb)
        loss.backward()
        return loss, {k: p.grad for k, p in params.items()}
    '''
    ex = grade_entries(runner, submission(tmp_path, code), ("forward_backward",), hidden=False)["forward_backward"]
    assert ex.score == 0 and {c.mistake for c in ex.checks} == {"autograd_used"}


# -- each function on its own: forward_backward and train keep their points when a helper is wrong -----------

def test_forward_backward_that_calls_a_wrong_helper_keeps_its_points(runner, tmp_path):
    code = '''
    def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
        return bngain * bnvar_inv * dhpreact  # the direct path only
    '''
    results = grade_entries(runner, submission(tmp_path, code), ("forward_backward", "batchnorm_backward"), hidden=False)
    fb, bn = results["forward_backward"], results["batchnorm_backward"]
    assert bn.score == 0  # the helper loses its own points
    assert fb.score == fb.max_score and fb.first_wrong_step is None
    w1 = next(c for c in fb.checks if c.name == "W1")
    assert w1.verdict == "wrong" and w1.local_verdict in ("exact", "approx")
    assert "depends on batchnorm_backward, which is wrong" in w1.message and w1.mistake == "depends_on"


def test_forward_backward_with_its_own_mistake_loses_it(runner, tmp_path):
    code = REFERENCE[REFERENCE.index("def forward_backward("):REFERENCE.index("def train(")].replace(
        "    dh = dlogits @ W2.T\n", "    dh = dlogits @ W2.T * 2\n")
    ex = grade_entries(runner, submission(tmp_path, code), ("forward_backward",), hidden=False)["forward_backward"]
    checks = {c.name: c for c in ex.checks}
    assert checks["W2"].passed and checks["b2"].passed
    assert all(not checks[k].passed and checks[k].local_verdict not in ("exact", "approx")
               for k in ("bngain", "bnbias", "W1", "C"))


LOOP_MISTAKES = {
    "sign": ("p -= lr * grads[name]", "p += lr * grads[name]"),
    "skipped": ("p -= lr * grads[name]", "p -= lr * grads[name] if name != 'b2' else 0"),
    "lr": ("p -= lr * grads[name]", "p -= 0.5 * lr * grads[name]"),
    "stale_batch": ("        loss, grads = forward_backward(params, X[ix], Y[ix])",
                    "        ix = ix if _ == 0 else ix0\n        ix0 = ix\n        loss, grads = forward_backward(params, X[ix], Y[ix])"),
}


@pytest.mark.parametrize("kind", sorted(LOOP_MISTAKES))
def test_train_loop_mistakes_cost_train(runner, tmp_path, kind):
    old, new = LOOP_MISTAKES[kind]
    train_src = REFERENCE[REFERENCE.index("def train("):REFERENCE.index("# -- given: evaluate")]
    assert old in train_src
    ex = grade_entries(runner, submission(tmp_path, train_src.replace(old, new)), ("train",), hidden=False)["train"]
    losses = next(c for c in ex.checks if c.name == "losses")
    assert not losses.passed and losses.local_verdict == "wrong" and "the loop" in losses.message
    assert ex.score < ex.max_score


def test_train_with_a_wrong_backward_keeps_its_points(runner, tmp_path):
    """n/(n-1) dropped in batchnorm_backward: the curve differs by ~2e-5 relative (not the true trajectory),
    the loop is right on the student's own gradients, so train keeps its points."""
    code = next(c for e, m, c in MISTAKES if (e, m) == ("batchnorm_backward", "bessel"))  # no n/(n-1)
    ex = grade_entries(runner, submission(tmp_path, code), ("train",), hidden=True)["train"]
    losses = next(c for c in ex.checks if c.name == "losses")
    assert losses.verdict == "wrong"  # the global verdict is tight enough to see it
    assert losses.local_verdict == "exact" and ex.score == ex.max_score


def test_forward_backward_that_raises_keeps_the_gradients_it_had(runner, tmp_path):
    """An exception late in forward_backward (here in the embedding step) costs only what it did not reach."""
    code = REFERENCE[REFERENCE.index("def forward_backward("):REFERENCE.index("def train(")].replace(
        "    dC = embedding_backward(Xb, demb, C)\n", "    dC = embedding_backward(Xb, demb.view(-1), C)\n")
    ex = grade_entries(runner, submission(tmp_path, code), ("forward_backward",), hidden=True)["forward_backward"]
    checks = {c.name: c for c in ex.checks}
    assert all(checks[k].passed for k in ("loss", "W2", "b2", "bngain", "bnbias", "W1", "b1"))
    assert checks["C"].verdict == "error" and checks["C"].message.startswith("not reached: ")
    assert ex.score == ex.max_score - 1 and ex.first_wrong_step == "C"


def test_old_signatures_keep_working(runner, tmp_path):
    """Submissions written for the earlier template: tanh_backward(h, dh), embedding_backward(Xb, demb,
    num_embeddings): the drivers pass `hpreact` and `C` only to functions whose signature has them."""
    code = '''
    def tanh_backward(h, dh):
        return (1 - h**2) * dh

    def embedding_backward(Xb, demb, num_embeddings):
        dC = torch.zeros(num_embeddings, demb.shape[-1], dtype=demb.dtype)
        return dC.index_add_(0, Xb.reshape(-1), demb.reshape(-1, demb.shape[-1]))
    '''
    results = grade_entries(runner, submission(tmp_path, code), ("tanh_backward", "embedding_backward"), hidden=True)
    assert all(ex.score == ex.max_score for ex in results.values())


# -- what hidden cases test shows in a public one (issue 17) ----------------------------------------------------

def _properties(case) -> set:
    """The dtypes, batch sizes and widths of a case's tensors."""
    import torch
    out = set()
    values = case.inputs.get("params", {}) | case.inputs if isinstance(case.inputs.get("params"), dict) else case.inputs
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            out.add(("dtype", value.dtype))
    return out


@pytest.mark.parametrize("entry", [e.entry for e in exercises("backprop_ninja")])
def test_every_dtype_hidden_cases_use_is_in_a_public_case(entry):
    from autograder.core.exercise import Seeds
    exercise = next(e for e in exercises("backprop_ninja") if e.entry == entry)
    cases = exercise.cases(Seeds(hidden=True, secret="properties"))
    public = set().union(*(_properties(c) for c in cases if not c.hidden))
    hidden = set().union(*(_properties(c) for c in cases if c.hidden))
    assert hidden <= public, (entry, hidden - public)
    sizes = {c.label.split("batch ")[1].split(",")[0] for c in cases if not c.hidden and "batch " in c.label}
    assert len(sizes) >= 2 or entry == "train", (entry, sizes)  # a hard-coded 32 fails a public case


def test_code_that_cannot_mix_dtypes_fails_check_not_only_grading(runner, tmp_path):
    """`F.one_hot(Xb, 27).float() @ demb`: right on float32, a RuntimeError on float64 (hidden cases were its
    only float64): `check` now shows it, with the case that fails named."""
    code = '''
    def embedding_backward(Xb, demb, C):
        return F.one_hot(Xb.view(-1), 27).float().T @ demb.view(-1, demb.shape[-1])
    '''
    ex = grade_entries(runner, submission(tmp_path, code), ("embedding_backward",), hidden=False)["embedding_backward"]
    (check,) = ex.checks
    assert check.points < check.max_points
    assert any(cv.verdict in ("error", "wrong") for cv in check.cases)


def test_a_step_depending_on_two_wrong_helpers_says_they_are_wrong(runner, tmp_path):
    code = '''
    def tanh_backward(h, dh, hpreact=None):
        return 2 * (1.0 - h**2) * dh

    def batchnorm_backward(dhpreact, bngain, bnraw, bnvar_inv):
        n = dhpreact.shape[0]
        return bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))
    '''
    ex = grade_entries(runner, submission(tmp_path, code), ("forward_backward",), hidden=False)["forward_backward"]
    w1 = next(c for c in ex.checks if c.name == "W1")
    assert w1.points == w1.max_points
    assert "depends on tanh_backward, batchnorm_backward, which are wrong" in w1.message, w1.message
