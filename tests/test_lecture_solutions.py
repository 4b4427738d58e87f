"""Real solutions score full marks; zero is not free; exceptions keep what came before; grading is
deterministic.

LECTURE_EX1..4 are the solved cells of Karpathy's notebook, copied verbatim (karpathy/nn-zero-to-hero,
lectures/makemore/makemore_part4_backprop.ipynb, exercises 1-4), pasted under the template's stubs the
way a student would (the template binds the lecture's names from `ctx`, imports F, gives `n`, `C`).
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from autograder.assignments import exercises
from autograder.core.exercise import Seeds
from autograder.core.pipeline import grade
from autograder.authoring.templating import strip_solutions

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = strip_solutions((ROOT / "reference" / "backprop_ninja.py").read_text())
SEEDS = Seeds(hidden=True, secret="test-lecture-solutions")

# Exercise 1, verbatim from the notebook (2-space indent as there).
LECTURE_EX1 = '''
dlogprobs = torch.zeros_like(logprobs)
dlogprobs[range(n), Yb] = -1.0/n
dprobs = (1.0 / probs) * dlogprobs
dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)
dcounts = counts_sum_inv * dprobs
dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv
dcounts += torch.ones_like(counts) * dcounts_sum
dnorm_logits = counts * dcounts
dlogits = dnorm_logits.clone()
dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes
dh = dlogits @ W2.T
dW2 = h.T @ dlogits
db2 = dlogits.sum(0)
dhpreact = (1.0 - h**2) * dh
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
dbnraw = bngain * dhpreact
dbnbias = dhpreact.sum(0, keepdim=True)
dbndiff = bnvar_inv * dbnraw
dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
dbnvar = (-0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv
dbndiff2 = (1.0/(n-1))*torch.ones_like(bndiff2) * dbnvar
dbndiff += (2*bndiff) * dbndiff2
dhprebn = dbndiff.clone()
dbnmeani = (-dbndiff).sum(0)
dhprebn += 1.0/n * (torch.ones_like(hprebn) * dbnmeani)
dembcat = dhprebn @ W1.T
dW1 = embcat.T @ dhprebn
db1 = dhprebn.sum(0)
demb = dembcat.view(emb.shape)
dC = torch.zeros_like(C)
for k in range(Xb.shape[0]):
  for j in range(Xb.shape[1]):
    ix = Xb[k,j]
    dC[ix] += demb[k,j]
'''

LECTURE_EX2 = '''
dlogits = F.softmax(logits, 1)
dlogits[range(n), Yb] -= 1
dlogits /= n
'''

LECTURE_EX3 = '''
dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))
'''

# Exercise 4's manual backprop, verbatim (the notebook writes it inside its training loop, with the
# lecture's own `with torch.no_grad():` around it).
LECTURE_EX4 = '''
with torch.no_grad():
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    # 2nd layer backprop
    dh = dlogits @ W2.T
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(0)
    # tanh
    dhpreact = (1.0 - h**2) * dh
    # batchnorm backprop
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))
    # 1st layer
    dembcat = dhprebn @ W1.T
    dW1 = embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    # embedding
    demb = dembcat.view(emb.shape)
    dC = torch.zeros_like(C)
    for k in range(Xb.shape[0]):
      for j in range(Xb.shape[1]):
        ix = Xb[k,j]
        dC[ix] += demb[k,j]
'''

TANH_LECTURE = "dhpreact = (1.0 - h**2) * dh\n"
EMBEDDING_LECTURE = '''
dC = torch.zeros_like(C)
for k in range(Xb.shape[0]):
  for j in range(Xb.shape[1]):
    ix = Xb[k,j]
    dC[ix] += demb[k,j]
'''
# the lecture's update, `p.data += -lr * grad`, over the params dict
TRAIN_UPDATE = "for name, p in params.items():\n    p.data += -lr * grads[name]\n"


def paste(template: str, function: str, code: str) -> str:
    """Replace the stubs of `function` in the template by `code`, indented into the function body, as a
    student pasting a notebook cell: all `dX = None  # TODO` lines of exercise 1 go, the cell goes at the
    first stub."""
    start = template.index(f"def {function}(")
    end = template.index("\ndef ", start + 1)
    body = template[start:end]
    stub = re.compile(r"^    (d\w+ = None  # TODO|# YOUR CODE HERE|raise NotImplementedError\(\))\n", re.M)
    first = stub.search(body)
    assert first, function
    block = textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")
    body = body[:first.start()] + block + stub.sub("", body[first.start():])
    return template[:start] + body + template[end:]


def without_no_grad(code: str) -> str:
    return textwrap.dedent(code.replace("with torch.no_grad():\n", ""))


def lecture_submission(tmp_path: Path, ex1: str = LECTURE_EX1, name: str = "lecture", ex4: str | None = None) -> Path:
    source = paste(TEMPLATE, "manual_backward", ex1)
    source = paste(source, "cross_entropy_backward", LECTURE_EX2)
    source = paste(source, "batchnorm_backward", LECTURE_EX3)
    source = paste(source, "tanh_backward", TANH_LECTURE)
    source = paste(source, "embedding_backward", EMBEDDING_LECTURE)
    source = paste(source, "forward_backward", ex4 if ex4 is not None else without_no_grad(LECTURE_EX4))
    stub = "        # YOUR CODE HERE\n        raise NotImplementedError()\n"
    assert source.count(stub) == 1
    source = source.replace(stub, textwrap.indent(TRAIN_UPDATE, "        "))
    d = tmp_path / name
    d.mkdir()
    (d / "backprop_ninja.py").write_text(source)
    return d


def grade_all(runner, sub: Path, entries=None, seeds=SEEDS):
    exs = [e for e in exercises("backprop_ninja") if entries is None or e.entry in entries]
    return grade(sub, exs, hidden=True, runner=runner, seeds=seeds)


def test_the_lecture_solved_notebook_scores_full_marks_public_and_hidden(runner, tmp_path):
    result = grade_all(runner, lecture_submission(tmp_path))
    bad = [(e.id, c.name, c.verdict, c.message) for e in result.exercises for c in e.checks if not c.passed]
    assert bad == [] and result.score == result.max_score == 50
    assert all(len(c.cases) >= 2 for e in result.exercises for c in e.checks)  # hidden cases were run
    manual = next(e for e in result.exercises if e.entry == "manual_backward") if hasattr(result.exercises[0], "entry") \
        else result.exercises[0]
    bnmeani = next(c for c in manual.checks if c.name == "bnmeani")
    assert "accepted" in bnmeani.message  # the (64,) for (1, 64) is accepted, and said so


def test_the_lecture_exercise_4_with_its_no_grad_scores_full_marks(runner, tmp_path):
    result = grade_all(runner, lecture_submission(tmp_path, ex4=LECTURE_EX4), ("forward_backward", "train"))
    assert result.score == result.max_score


# Patterns from real student solutions (public GitHub repositories), each written their way.
REAL_PATTERNS = {
    # float32 constants on the float64 hidden cases: `torch.zeros(probs.shape)`, `torch.zeros((vocab, emb))`
    "float32_constants": ("manual_backward", LECTURE_EX1.replace("dlogprobs = torch.zeros_like(logprobs)",
                                                                  "dlogprobs = torch.zeros(logprobs.shape)")
                          .replace("dC = torch.zeros_like(C)", "dC = torch.zeros((C.shape[0], C.shape[1]))")),
    # keepdim=True on the 1-d biases (a leading size-1 dimension), and 1 - tanh(hpreact)**2
    "keepdim_biases_and_tanh": ("manual_backward", LECTURE_EX1.replace("db2 = dlogits.sum(0)", "db2 = dlogits.sum(0, keepdim=True)")
                                .replace("db1 = dhprebn.sum(0)", "db1 = dhprebn.sum(0, keepdim=True)")
                                .replace("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1 - torch.tanh(hpreact)**2) * dh")),
    # index_add_ embedding (pattern of e.g. many solutions: dC.index_add_(0, Xb.view(-1), ...))
    "index_add": ("manual_backward", LECTURE_EX1[:LECTURE_EX1.index("dC = torch.zeros_like(C)")]
                  + "dC = torch.zeros_like(C)\ndC.index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))\n"),
    # one-hot matmul embedding
    "onehot_matmul": ("manual_backward", LECTURE_EX1[:LECTURE_EX1.index("dC = torch.zeros_like(C)")]
                      + "dC = F.one_hot(Xb.view(-1), num_classes=C.shape[0]).to(demb.dtype).T @ demb.view(-1, C.shape[1])\n"),
    # einsum embedding
    "einsum": ("manual_backward", LECTURE_EX1[:LECTURE_EX1.index("dC = torch.zeros_like(C)")]
               + "dC = torch.einsum('bti,btj->ij', F.one_hot(Xb, C.shape[0]).to(demb.dtype), demb)\n"),
}


# Exercise 1 as independent students wrote it in public repositories (found by searching public code for
# `dbndiff2 =`; the search tool gives no repository name, so they are paraphrased here, each keeping the
# distinctive way it was written, not copied).
STUDENT_SOLUTIONS = {
    # lecture order; 1 - tanh(hpreact)**2; -1/2 * (...)**-1.5; -dbndiff.sum(0, keepdim=True); loop embedding
    "tanh_of_hpreact": LECTURE_EX1.replace("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1 - torch.tanh(hpreact) ** 2) * dh")
    .replace("dbnvar = (-0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv", "dbnvar = -1/2 * (bnvar + 1e-5) ** -1.5 * dbnvar_inv")
    .replace("dbnmeani = (-dbndiff).sum(0)", "dbnmeani = -dbndiff.sum(0, keepdim=True)"),
    # both branches in one expression, the global vocab_size for num_classes, the tensors in the template's order
    "one_expression_branches": """
dlogprobs = torch.zeros_like(logprobs)
dlogprobs[range(n), Yb] = -1.0 / n
dprobs = (1.0 / probs) * dlogprobs
dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)
dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv
dcounts = counts_sum_inv * dprobs + torch.ones_like(counts) * dcounts_sum
dnorm_logits = counts * dcounts
dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
dlogits = dnorm_logits.clone()
dlogits += F.one_hot(logits.max(1).indices, num_classes=vocab_size) * dlogit_maxes
dh = dlogits @ W2.T
dW2 = h.T @ dlogits
db2 = dlogits.sum(0)
dhpreact = (1.0 - h**2) * dh
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
dbnbias = dhpreact.sum(0, keepdim=True)
dbnraw = bngain * dhpreact
dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv
dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar
dbndiff = (2.0 * bndiff) * dbndiff2 + bnvar_inv * dbnraw
dbnmeani = (-dbndiff).sum(0, keepdim=True)
dhprebn = dbndiff.clone() + (1.0 / n) * torch.ones_like(hprebn) * dbnmeani
dW1 = embcat.T @ dhprebn
db1 = dhprebn.sum(0)
dembcat = dhprebn @ W1.T
demb = dembcat.view(emb.shape)
dC = torch.zeros_like(C)
for k in range(Xb.shape[0]):
    for j in range(Xb.shape[1]):
        dC[Xb[k, j]] += demb[k, j]
""",
    # no in-place updates (x = x + ...), division by (n - 1) last, a named one-hot mask, named loop indices
    "functional_style": """
dlogprobs = torch.zeros_like(logprobs)
dlogprobs[range(n), Yb] = -1 / n
dprobs = (1 / probs) * dlogprobs
dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)
dcounts = counts_sum_inv * dprobs
dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv
dcounts = dcounts + torch.ones_like(counts) * dcounts_sum
dnorm_logits = counts * dcounts
dlogits = dnorm_logits.clone()
dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
max_positions = F.one_hot(logits.max(1).indices, num_classes=logits.shape[1])
dlogits = dlogits + max_positions * dlogit_maxes
dh = dlogits @ W2.T
dW2 = h.T @ dlogits
db2 = dlogits.sum(0)
dhpreact = (1 - h**2) * dh
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
dbnraw = bngain * dhpreact
dbnbias = dhpreact.sum(0, keepdim=True)
dbndiff = bnvar_inv * dbnraw
dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5) * dbnvar_inv
dbndiff2 = torch.ones_like(bndiff2) * dbnvar / (n - 1)
dbndiff = dbndiff + 2 * bndiff * dbndiff2
dhprebn = dbndiff.clone()
dbnmeani = (-dbndiff).sum(0, keepdim=True)
dhprebn = dhprebn + torch.ones_like(hprebn) * dbnmeani / n
dembcat = dhprebn @ W1.T
dW1 = embcat.T @ dhprebn
db1 = dhprebn.sum(0)
demb = dembcat.view(emb.shape)
dC = torch.zeros_like(C)
for row in range(Xb.shape[0]):
    for column in range(Xb.shape[1]):
        char_index = Xb[row, column]
        dC[char_index] += demb[row, column]
""",
    # the multiplications written the other way round, a batch-size name of its own, `* 1.0` for a copy
    "other_operand_order": """
B = Xb.shape[0]
dlogprobs = torch.zeros_like(logprobs)
dlogprobs[range(B), Yb] = -1.0 / B
dprobs = dlogprobs * probs**-1
dcounts_sum_inv = (dprobs * counts).sum(dim=1, keepdim=True)
dcounts = dprobs * counts_sum_inv
dcounts_sum = dcounts_sum_inv * -(counts_sum**-2)
dcounts += dcounts_sum * torch.ones_like(counts)
dnorm_logits = dcounts * norm_logits.exp()
dlogit_maxes = (dnorm_logits * -1.0).sum(dim=1, keepdim=True)
dlogits = dnorm_logits * 1.0
dlogits += dlogit_maxes * F.one_hot(logits.argmax(dim=1), logits.shape[1])
dh = dlogits @ W2.t()
dW2 = h.t() @ dlogits
db2 = dlogits.sum(dim=0)
dhpreact = dh * (1 - h * h)
dbngain = (dhpreact * bnraw).sum(dim=0, keepdim=True)
dbnbias = dhpreact.sum(dim=0, keepdim=True)
dbnraw = dhpreact * bngain
dbndiff = dbnraw * bnvar_inv
dbnvar_inv = (dbnraw * bndiff).sum(dim=0, keepdim=True)
dbnvar = dbnvar_inv * -0.5 * (bnvar + 1e-5)**-1.5
dbndiff2 = dbnvar * torch.ones_like(bndiff2) * 1.0 / (B - 1.0)
dbndiff += dbndiff2 * (2 * bndiff)
dhprebn = dbndiff * 1.0
dbnmeani = (dbndiff * -1.0).sum(dim=0, keepdim=True)
dhprebn += dbnmeani * torch.ones_like(hprebn) / B
dembcat = dhprebn @ W1.t()
dW1 = embcat.t() @ dhprebn
db1 = dhprebn.sum(dim=0)
demb = dembcat.reshape(emb.shape)
dC = torch.zeros_like(C).index_add_(0, Xb.flatten(), demb.reshape(-1, emb.shape[-1]))
""",
}


@pytest.mark.parametrize("name", sorted(STUDENT_SOLUTIONS))
def test_independent_student_solutions_score_full_marks(runner, tmp_path, name):
    sub = lecture_submission(tmp_path, ex1=STUDENT_SOLUTIONS[name])
    ex = grade_all(runner, sub, ("manual_backward",)).exercises[0]
    bad = [(c.name, c.verdict, c.message) for c in ex.checks if not c.passed]
    assert bad == [] and ex.score == ex.max_score


@pytest.mark.parametrize("pattern", sorted(REAL_PATTERNS))
def test_real_solution_patterns_pass_public_and_hidden(runner, tmp_path, pattern):
    entry, code = REAL_PATTERNS[pattern]
    sub = lecture_submission(tmp_path, ex1=code)
    ex = grade_all(runner, sub, (entry,)).exercises[0]
    bad = [(c.name, c.verdict, c.message) for c in ex.checks if not c.passed]
    assert bad == [] and ex.score == ex.max_score


def test_float32_rounding_carried_downstream_is_judged_at_float32_with_a_note():
    """dlogprobs made with `torch.zeros(logprobs.shape)` is float32 on a float64 case; dprobs computed from
    it is float64 but carries float32 rounding: judged at float32 precision, and the message says why."""
    import torch
    from autograder.core.pipeline import prepared_cases
    exercise = next(e for e in exercises("backprop_ninja") if e.entry == "manual_backward")
    case, truth = next((c, t) for c, t in prepared_cases(exercise, SEEDS) if c.hidden)
    fwd = case.info["forward"]
    outputs = {name: value.clone() for name, value in truth.items()}
    outputs["logprobs"] = truth["logprobs"].to(torch.float32)
    outputs["probs"] = (1.0 / fwd.values["probs"]) * outputs["logprobs"]
    assert outputs["probs"].dtype == torch.float64
    checks = {c.name: c for c in exercise.judge(case, outputs, truth)}
    assert all(c.passed for c in checks.values())
    assert "judged at torch.float32 precision" in checks["probs"].message and "dlogprobs" in checks["probs"].message
    # the same float64 answer with float64 rounding only is judged at float64 precision: no note
    assert "precision" not in {c.name: c for c in exercise.judge(case, dict(truth), truth)}["probs"].message


def test_float32_constants_do_not_hide_a_mistake(runner, tmp_path):
    """Judging at float32 precision still sees the smallest catalogued mistake (n vs n-1) on hidden cases."""
    code = REAL_PATTERNS["float32_constants"][1].replace("dbndiff2 = (1.0/(n-1))", "dbndiff2 = (1.0/n)")
    ex = grade_all(runner, lecture_submission(tmp_path, ex1=code), ("manual_backward",)).exercises[0]
    bndiff2 = next(c for c in ex.checks if c.name == "bndiff2")
    assert all(cv.verdict == "wrong" for cv in bndiff2.cases) and bndiff2.mistake == "bessel"
    assert ex.first_wrong_step == "bndiff2" and ex.score == ex.max_score - 1


# -- zero is not free ---------------------------------------------------------------------------------------

NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits",
         "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff",
         "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C")

CONSTANT_ANSWERS = {
    "zeros": "\n".join(f"d{k} = torch.zeros_like({k})" for k in NAMES),
    "ones": "\n".join(f"d{k} = torch.ones_like({k})" for k in NAMES),
    "same_constant": "\n".join(f"d{k} = torch.full_like({k}, 0.37)" for k in NAMES),
    "copies_of_inputs": "\n".join(f"d{k} = {k}.clone()" for k in NAMES),
}


@pytest.mark.parametrize("kind", sorted(CONSTANT_ANSWERS))
def test_zero_constant_or_copied_answers_earn_about_nothing(runner, tmp_path, kind):
    sub = lecture_submission(tmp_path, ex1=CONSTANT_ANSWERS[kind])
    ex = grade_all(runner, sub, ("manual_backward",), seeds=Seeds(hidden=False)).exercises[0]
    # dlogit_maxes and db1 are mathematically 0 (their truth is rounding noise): a zero is right there
    assert ex.score <= 2.0, [(c.name, c.verdict, c.local_verdict) for c in ex.checks if c.points]


# -- exceptions keep what came before ------------------------------------------------------------------------

EXCEPTIONS = {
    # (line of the lecture's cell, its broken form, the first step not reached)
    "dh_without_T": ("dh = dlogits @ W2.T", "dh = dlogits @ W2", "h"),
    # dlogits = dnorm_logits.clone() was assigned: it lacks only the max branch, which is ~0, so it passes
    "one_hot_unimported": ("dlogits += F.one_hot(", "dlogits += G.one_hot(", "h"),
    "keepdim_broadcast": ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
                          "dcounts_sum_inv = (counts * dprobs).sum(1)", "counts_sum_inv"),  # raises at dcounts +=
}


@pytest.mark.parametrize("kind", sorted(EXCEPTIONS))
def test_an_exception_keeps_the_gradients_computed_before(runner, tmp_path, kind):
    old, new, first = EXCEPTIONS[kind]
    assert LECTURE_EX1.count(old) == 1
    sub = lecture_submission(tmp_path, ex1=LECTURE_EX1.replace(old, new))
    ex = grade_all(runner, sub, ("manual_backward",), seeds=Seeds(hidden=False)).exercises[0]
    checks = {c.name: c for c in ex.checks}
    # The lecture's order computes some later tensors first (dcounts before dcounts_sum): everything it had
    # computed is graded and right.
    before = NAMES[:NAMES.index(first)]
    assert all(checks[n].passed for n in before), [(n, checks[n].verdict, checks[n].message) for n in before]
    assert ex.score >= len(before)
    assert ex.first_wrong_step == first
    messages = [checks[n].message for n in NAMES if checks[n].verdict == "error"]
    assert messages[0].startswith("raised ") and " at line " in messages[0]
    assert all(m.startswith("not reached: ") and " at line " in m for m in messages[1:])
    assert sum("Error:" in m for m in messages) == 1  # the exception's text is shown once
    # what the student reads at 80 columns: the raise once, then ONE line listing what it left unreached
    from rich.console import Console

    from autograder.frontends.render import render_exercise
    console = Console(width=80, record=True, color_system=None)
    render_exercise(ex, console)
    text = console.export_text()
    unreached = [n for n in NAMES if checks[n].verdict == "error"][1:]
    assert "not reached" not in text and text.count("raised ") == 1, text
    if len(unreached) >= 2:
        assert f"{len(unreached)} left unreached by the " in text
        listing = " ".join(text[text.index("left unreached by the "):].split())
        assert ", ".join(unreached) in listing, listing


def test_an_exception_under_a_decorator_keeps_the_gradients_too(runner, tmp_path):
    source = lecture_submission(tmp_path, ex1=LECTURE_EX1.replace("dh = dlogits @ W2.T", "dh = dlogits @ W2"))
    path = source / "backprop_ninja.py"
    text = path.read_text()
    path.write_text(text.replace("def manual_backward(ctx):", "def _logged(f):\n    @functools.wraps(f)\n"
                                 "    def inner(*a, **k):\n        return f(*a, **k)\n    return inner\n\n\n"
                                 "@_logged\ndef manual_backward(ctx):", 1).replace("import torch\n", "import functools\nimport torch\n", 1))
    ex = grade_all(runner, source, ("manual_backward",), seeds=Seeds(hidden=False)).exercises[0]
    assert ex.first_wrong_step == "h" and ex.score == NAMES.index("h")


# -- deterministic ------------------------------------------------------------------------------------------

def test_the_same_buggy_submission_scores_the_same_five_times(runner, tmp_path):
    buggy = LECTURE_EX1.replace("dbndiff2 = (1.0/(n-1))", "dbndiff2 = (1.0/n)").replace("dh = dlogits @ W2.T", "dh = 2 * dlogits @ W2.T")
    sub = lecture_submission(tmp_path, ex1=buggy)
    scores = set()
    for _ in range(5):
        result = grade_all(runner, sub, ("manual_backward", "forward_backward"))
        scores.add(tuple((e.id, e.score, tuple((c.name, c.points, c.verdict, c.local_verdict) for c in e.checks))
                         for e in result.exercises))
    assert len(scores) == 1
    (only,) = scores
    assert 0 < only[0][1] < 26


def test_hidden_seeds_follow_the_exercise_id():
    """Exercise ids are written once: the case builder gets the id from the Exercise, so the hidden seeds
    are derived from exactly `backprop_ninja.<entry>`."""
    import hashlib
    for exercise in exercises("backprop_ninja"):
        cases = exercise.cases(SEEDS)
        hidden = [c for c in cases if c.hidden]
        assert hidden
        want = [int.from_bytes(hashlib.sha256(f"{SEEDS.secret}|{exercise.id}|{i}".encode()).digest()[:4], "little")
                + 1_000_000 for i in range(len(hidden))]
        assert SEEDS.hidden_seeds(exercise.id, len(hidden)) == want
        if exercise.entry in ("manual_backward", "forward_backward"):
            assert [c.info["seed"] for c in hidden] == want


def test_judges_never_raise_on_records_they_did_not_expect():
    """The drivers' records (helper calls, train steps, an exception's place) come from the student's process:
    malformed ones are judged wrong or ignored, never crash the grade."""
    import torch
    from autograder.core.pipeline import prepared_cases
    exs = {e.entry: e for e in exercises("backprop_ninja")}
    public = Seeds(hidden=False)
    for entry, junk in (("forward_backward", {"calls": {"tanh_backward": {"args": {"h": "x", "dh": 3}, "out": [1]},
                                                         "cross_entropy_backward": {"args": {}, "out": torch.ones(2)}},
                                               "raised": {"line": "?"}}),
                        ("train", {"losses": [1.0] * 40, "steps": [{"params": 1, "Xb": "a", "Yb": None}] * 40,
                                   "final": 5}),
                        ("manual_backward", {"raised": {"assigned": 7, "error": None}})):
        case, truth = prepared_cases(exs[entry], public)[0]
        comparisons = exs[entry].judge(case, junk, truth)
        assert comparisons and not any(c.passed for c in comparisons if c.name not in ("loss",))


# -- an exception keeps what came before, whatever the gradients are named ------------------------------------

def renamed_submission(tmp_path: Path, renames: dict, broken: tuple[str, str] | None = None) -> Path:
    """The lecture's exercise 1 with the student's own local names (`dL_dlp` for `dlogprobs`), mapped to the
    contract's names in the function's own `return dict(...)`, as a student who renamed them writes it."""
    code = LECTURE_EX1
    if broken:
        assert code.count(broken[0]) == 1
        code = code.replace(broken[0], broken[1])
    for old in sorted(renames, key=len, reverse=True):
        code = re.sub(rf"\b{old}\b", renames[old], code)
    sub = lecture_submission(tmp_path, ex1=code)
    path = sub / "backprop_ninja.py"
    text = path.read_text()
    start = text.index("    return dict(logprobs=dlogprobs")
    end = text.index("\n\n", start)
    mapping = ", ".join(f"{name}={renames.get('d' + name, 'd' + name)}" for name in NAMES)
    path.write_text(text[:start] + f"    return dict({mapping})" + text[end:])
    return sub


def test_gradients_before_an_exception_are_graded_whatever_their_names(runner, tmp_path):
    """Issue 17: `dL_d<name>` locals, and a hard-coded `view((32, 3, 10))` that raises on every other batch
    size: the 24 gradients before it keep all their points (read through the function's own return mapping);
    only emb and C, not reached on the other batch sizes, lose points, and they say why."""
    renames = {"d" + name: "dL_d" + name for name in NAMES}
    renames["dlogprobs"] = "dL_dlp"
    sub = renamed_submission(tmp_path, renames, ("demb = dembcat.view(emb.shape)", "demb = dembcat.view((32, 3, 10))"))
    ex = grade_all(runner, sub, ("manual_backward",)).exercises[0]
    checks = {c.name: c for c in ex.checks}
    before = NAMES[:NAMES.index("emb")]
    assert all(checks[n].passed and checks[n].points == checks[n].max_points for n in before), \
        [(n, checks[n].verdict, checks[n].message) for n in before if not checks[n].passed]
    for name in ("emb", "C"):  # right on the batch of 32, not reached on the others
        c = checks[name]
        assert not c.passed and 0 < c.points < c.max_points, (name, c.points)
    assert "RuntimeError" in checks["emb"].message and " at line " in checks["emb"].message
    assert ex.score > 24


def test_other_names_mapped_in_the_return_keep_their_points_after_an_exception(runner, tmp_path):
    """`dnorms_logits` and `dbnmean1` (names of a real solution), an exception much later: both are graded."""
    renames = {"dnorm_logits": "dnorms_logits", "dbnmeani": "dbnmean1"}
    sub = renamed_submission(tmp_path, renames, ("dW1 = embcat.T @ dhprebn", "dW1 = embcat @ dhprebn"))
    ex = grade_all(runner, sub, ("manual_backward",), seeds=Seeds(hidden=False)).exercises[0]
    checks = {c.name: c for c in ex.checks}
    assert checks["norm_logits"].passed and checks["bnmeani"].passed
    assert all(checks[n].passed for n in NAMES[:NAMES.index("embcat") + 1])
    assert ex.first_wrong_step == "W1"


def test_a_right_step_fed_a_wrongly_shaped_upstream_keeps_its_point(runner, tmp_path):
    """Issue 17: dcounts_sum_inv without keepdim is (32,); the lecture's next line, right, broadcasts it to
    (32, 32). A wrong upstream shape is a wrong upstream: that step keeps its point, and says why."""
    old, new, _ = EXCEPTIONS["keepdim_broadcast"]
    sub = lecture_submission(tmp_path, ex1=LECTURE_EX1.replace(old, new))
    ex = grade_all(runner, sub, ("manual_backward",), seeds=Seeds(hidden=False)).exercises[0]
    checks = {c.name: c for c in ex.checks}
    assert ex.first_wrong_step == "counts_sum_inv" and checks["counts_sum_inv"].points == 0
    c = checks["counts_sum"]
    assert c.points == c.max_points and c.local_verdict in ("exact", "approx"), (c.verdict, c.message)
    assert "correct given your dcounts_sum_inv of shape (32,)" in c.message
    # a wrong step fed the same upstream is still wrong
    wrong = LECTURE_EX1.replace(old, new).replace("dcounts_sum = (-counts_sum**-2)", "dcounts_sum = (counts_sum**-2)")
    ex = grade_all(runner, lecture_submission(tmp_path, ex1=wrong, name="wrong"), ("manual_backward",),
                   seeds=Seeds(hidden=False)).exercises[0]
    assert next(c for c in ex.checks if c.name == "counts_sum").points == 0


# -- the templates take the lecture's code as it is written (issue 17) ------------------------------------------

LECTURE_TRAIN_UPDATE = "for p, grad in zip(parameters, grads):\n    p.data += -lr * grad\n"


def test_the_lectures_training_loop_over_its_parameters_list_scores_full_marks(runner, tmp_path):
    """The lecture keeps `parameters` as a list and zips it with its list of gradients; the template's train
    gives `parameters` and a `grads` that works both ways. With forward_backward returning the lecture's
    list `[dC, dW1, ...]` as well."""
    sub = lecture_submission(tmp_path)
    path = sub / "backprop_ninja.py"
    text = path.read_text()
    assert text.count(textwrap.indent(TRAIN_UPDATE, "        ")) == 1
    text = text.replace(textwrap.indent(TRAIN_UPDATE, "        "), textwrap.indent(LECTURE_TRAIN_UPDATE, "        "))
    ret = "    return loss, dict(C=dC, W1=dW1, b1=db1, W2=dW2, b2=db2, bngain=dbngain, bnbias=dbnbias)\n"
    assert text.count(ret) == 1
    text = text.replace(ret, "    grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]\n    return loss, grads\n")
    path.write_text(text)
    result = grade_all(runner, sub, ("forward_backward", "train"))
    bad = [(e.id, c.name, c.verdict, c.message) for e in result.exercises for c in e.checks if not c.passed]
    assert bad == [] and result.score == result.max_score


def test_the_lectures_globals_are_there_where_its_lines_use_them(runner, tmp_path):
    """`batch_size`, `block_size`, `n_embd` in exercise 1 (bound to this batch: right on every batch size),
    `probs` in exercise 2, as the lecture's notebook has them."""
    ex1 = LECTURE_EX1.replace("demb = dembcat.view(emb.shape)", "demb = dembcat.view(batch_size, block_size, n_embd)")
    sub = lecture_submission(tmp_path, ex1=ex1)
    path = sub / "backprop_ninja.py"
    text = path.read_text()
    cell = textwrap.indent(LECTURE_EX2.strip("\n") + "\n", "    ")
    start = text.index("def cross_entropy_backward(")
    assert cell in text[start:text.index("\ndef ", start + 1)]
    text = text[:start] + text[start:].replace(
        cell, "    dlogits = probs.clone()\n    dlogits[range(batch_size), Yb] -= 1\n    dlogits /= batch_size\n", 1)
    path.write_text(text)
    result = grade_all(runner, sub, ("manual_backward", "cross_entropy_backward"))
    bad = [(e.id, c.name, c.verdict, c.message) for e in result.exercises for c in e.checks if not c.passed]
    assert bad == [] and result.score == result.max_score
