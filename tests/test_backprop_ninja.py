"""backprop_ninja: the reference earns full marks, the template zero; exercise 1 is graded cascade-free.

For every step of exercise 1 a submission with one realistic mistake at that step (the reference with
that one line changed, so every later step is fed the wrong value, as in a student's file) must get the
step's mistake id, name that step as the first wrong one, and keep full credit for every other tensor.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from autograder.assignments import exercises
from autograder.core.compare import NOT_IMPLEMENTED, PASSING
from autograder.core.pipeline import grade

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "reference" / "backprop_ninja.py").read_text()
ORDER = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits",
         "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff",
         "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C")


def mutate(old: str, new: str, source: str = REFERENCE) -> str:
    """The reference with one line of `manual_backward` changed."""
    start, end = source.index("def manual_backward(ctx):"), source.index("def cross_entropy_backward(")
    body = source[start:end]
    assert body.count(old) == 1, f"not exactly one {old!r} in manual_backward"
    return source[:start] + body.replace(old, new) + source[end:]


def write(tmp_path: Path, source: str, name: str = "sub") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "backprop_ninja.py").write_text(source)
    return d


def grade_entry(runner, submission: Path, entry: str, hidden: bool = True):
    exs = [e for e in exercises("backprop_ninja") if e.entry == entry]
    return grade(submission, exs, hidden=hidden, runner=runner).exercises[0]


# -- reference and template ---------------------------------------------------------------------------

def test_reference_full_marks_on_public_and_hidden_cases(runner):
    result = grade(ROOT / "reference", exercises("backprop_ninja"), hidden=True, runner=runner)
    bad = [(e.id, c.name, c.verdict, c.message) for e in result.exercises for c in e.checks if not c.passed]
    assert bad == []
    assert result.score == result.max_score == 50
    manual = result.exercises[0]
    assert manual.id == "backprop_ninja.manual_backward" and [c.name for c in manual.checks] == list(ORDER)
    assert manual.first_wrong_step is None
    assert all(c.local_verdict in PASSING for c in manual.checks)
    assert all(len(c.cases) >= 6 for c in manual.checks)  # 2 public + 4 hidden


def test_template_zero_and_not_implemented(runner):
    result = grade(ROOT / "student_template", exercises("backprop_ninja"), hidden=False, runner=runner)
    assert result.score == 0
    verdicts = {c.verdict for e in result.exercises for c in e.checks}
    assert verdicts == {NOT_IMPLEMENTED}
    assert all(e.first_wrong_step is None for e in result.exercises)


def test_template_is_generated_and_stubs_each_step():
    from autograder.authoring.templating import strip_solutions
    template = (ROOT / "student_template" / "backprop_ninja.py").read_text()
    assert template == strip_solutions(REFERENCE)
    for name in ORDER:
        assert f"    d{name} = None  # TODO\n" in template


def test_one_step_at_a_time(runner, tmp_path):
    """A student who has done the first two steps gets them graded; the rest are not_implemented."""
    from autograder.authoring.templating import strip_solutions
    source = strip_solutions(REFERENCE).replace(
        "    dlogprobs = None  # TODO\n",
        "    dlogprobs = torch.zeros_like(logprobs)\n    dlogprobs[range(n), Yb] = -1.0 / n\n").replace(
        "    dprobs = None  # TODO\n", "    dprobs = dlogprobs / probs\n")
    ex = grade_entry(runner, write(tmp_path, source), "manual_backward", hidden=False)
    verdicts = {c.name: c.verdict for c in ex.checks}
    assert verdicts["logprobs"] in PASSING and verdicts["probs"] in PASSING
    assert {v for k, v in verdicts.items() if k not in ("logprobs", "probs")} == {NOT_IMPLEMENTED}
    assert ex.score == 2 and ex.first_wrong_step is None


# -- exercise 1: one mistake per step, cascade-free ------------------------------------------------------

# step -> (line of the reference, the same line with a realistic mistake, expected mistake id or None for
# the generic diagnosis). Each keeps shapes where later steps consume the value, so the run goes on.
STEP_MISTAKES = {
    "logprobs": ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(n), Yb] = -1.0", "scale"),
    "probs": ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = (-1.0 / probs) * dlogprobs", "sign"),
    "counts_sum_inv": ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
                       "dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True) / n", "scale"),
    "counts_sum": ("dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv",
                   "dcounts_sum = (counts_sum**-2) * dcounts_sum_inv", "sign"),
    "counts": ("    dcounts += torch.ones_like(counts) * dcounts_sum\n", "", "missing_branch"),
    "norm_logits": ("dnorm_logits = counts * dcounts", "dnorm_logits = dcounts", None),
    "logit_maxes": ("dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
                    "dlogit_maxes = (-dcounts).sum(1, keepdim=True)", None),
    "logits": ("dlogits = dnorm_logits.clone()", "dlogits = 2 * dnorm_logits", "scale"),
    "h": ("dh = dlogits @ W2.T", "dh = dlogits @ W2.T / n", "scale"),
    "W2": ("dW2 = h.T @ dlogits", "dW2 = (h.T @ dlogits).T", "transposed"),
    "b2": ("db2 = dlogits.sum(0)", "db2 = dlogits", "not_reduced"),
    "hpreact": ("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1.0 - hpreact**2) * dh", "tanh_derivative"),
    "bngain": ("dbngain = (bnraw * dhpreact).sum(0, keepdim=True)", "dbngain = (bnraw * dhpreact).sum(1, keepdim=True)",
               "wrong_axis"),
    "bnbias": ("dbnbias = dhpreact.sum(0, keepdim=True)", "dbnbias = dhpreact", "not_reduced"),
    "bnraw": ("dbnraw = bngain * dhpreact", "dbnraw = dhpreact", "bngain_missing"),
    "bnvar_inv": ("dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)",
                  "dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True) / n", "scale"),
    "bnvar": ("dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv", "dbnvar = (-0.5 * bnvar**-1.5) * dbnvar_inv",
              "epsilon"),
    "bndiff2": ("dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar",
                "dbndiff2 = (1.0 / n) * torch.ones_like(bndiff2) * dbnvar", "bessel"),
    "bndiff": ("    dbndiff += (2 * bndiff) * dbndiff2\n", "", "missing_branch"),
    "bnmeani": ("dbnmeani = (-dbndiff).sum(0, keepdim=True)", "dbnmeani = dbndiff.sum(0, keepdim=True)", "sign"),
    "hprebn": ("    dhprebn += (1.0 / n) * torch.ones_like(hprebn) * dbnmeani\n", "", "missing_branch"),
    "embcat": ("dembcat = dhprebn @ W1.T", "dembcat = -dhprebn @ W1.T", "sign"),
    "W1": ("dW1 = embcat.T @ dhprebn", "dW1 = (embcat.T @ dhprebn).T", "transposed"),
    "b1": ("db1 = dhprebn.sum(0)", "db1 = dhprebn", "not_reduced"),
    "emb": ("demb = dembcat.view(emb.shape)",
            "demb = dembcat.view(n, emb.shape[2], emb.shape[1]).transpose(1, 2).contiguous()", None),
    "C": ("    dC = torch.zeros_like(C)\n    dC.index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))\n",
          "    dC = torch.einsum('nbk,nbd->kd', torch.nn.functional.one_hot(Xb).to(demb.dtype), demb)\n",
          "onehot_num_classes"),
}


def test_every_step_has_a_mistake():
    assert set(STEP_MISTAKES) == set(ORDER)


@pytest.mark.parametrize("step", ORDER)
def test_one_mistake_at_each_step(runner, tmp_path, step):
    old, new, mistake = STEP_MISTAKES[step]
    ex = grade_entry(runner, write(tmp_path, mutate(old, new)), "manual_backward")
    checks = {c.name: c for c in ex.checks}
    wrong = checks[step]
    assert wrong.verdict == "wrong" and wrong.local_verdict not in PASSING
    assert wrong.mistake == mistake, (wrong.mistake, wrong.hint, wrong.message)
    assert wrong.hint
    assert ex.first_wrong_step == step
    i = ORDER.index(step)
    for name in ORDER[:i]:
        assert checks[name].passed, name
    for name in ORDER[i + 1:]:  # cascade-free: right steps keep their points whatever came from upstream
        c = checks[name]
        assert c.points == c.max_points, (name, c.verdict, c.local_verdict, c.message)
        assert c.local_verdict in PASSING
    assert ex.score == pytest.approx(ex.max_score - checks[step].max_points + checks[step].points)


def test_downstream_of_a_mistake_is_correct_step_wrong_upstream(runner, tmp_path):
    old, new, _ = STEP_MISTAKES["probs"]
    ex = grade_entry(runner, write(tmp_path, mutate(old, new)), "manual_backward", hidden=False)
    checks = {c.name: c for c in ex.checks}
    downstream = checks["counts_sum_inv"]
    assert downstream.verdict == "wrong" and downstream.local_verdict in PASSING
    assert downstream.mistake == "upstream"
    from rich.console import Console
    from autograder.frontends.render import to_terminal
    console = Console(record=True, width=200)
    from autograder.core.pipeline import GradeResult
    to_terminal(GradeResult("sub", ex.score, ex.max_score, [ex], False, "-"), console)
    text = console.export_text()
    assert "correct step, wrong upstream" in text and "first wrong step: probs" in text


def test_shape_mistakes_of_intermediates(runner, tmp_path):
    """keepdim / not_reduced on a tensor a later step consumes: named, even though later steps then fail."""
    cases = {
        "counts_sum_inv": ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
                           "dcounts_sum_inv = (counts * dprobs)", "not_reduced"),
        "logit_maxes": ("dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
                        "dlogit_maxes = (-dnorm_logits).sum(1).view(-1, 1).squeeze(1)", "keepdim"),
    }
    for i, (step, (old, new, mistake)) in enumerate(cases.items()):
        # Later steps would crash on the wrong shape: return the tensors up to this one, as a student mid-way.
        source = mutate(old, new + f"\n    return dict(logprobs=dlogprobs, probs=dprobs, counts_sum_inv=dcounts_sum_inv"
                        + (", counts_sum=dcounts_sum, counts=dcounts, norm_logits=dnorm_logits, logit_maxes=dlogit_maxes)"
                           if step == "logit_maxes" else ")"))
        ex = grade_entry(runner, write(tmp_path, source, f"s{i}"), "manual_backward", hidden=False)
        check = next(c for c in ex.checks if c.name == step)
        assert check.mistake == mistake, (check.mistake, check.hint)
        assert ex.first_wrong_step == step


def test_autograd_is_refused(runner, tmp_path):
    source = mutate("    n, Xb, Yb = ctx.n, ctx.Xb, ctx.Yb\n",
                    "    n, Xb, Yb = ctx.n, ctx.Xb, ctx.Yb\n    x = ctx.logprobs.clone().requires_grad_()\n"
                    "    torch.autograd.grad(x.sum(), x)\n")
    ex = grade_entry(runner, write(tmp_path, source), "manual_backward", hidden=False)
    assert ex.score == 0 and {c.mistake for c in ex.checks} == {"autograd_used"}


def test_missing_key_and_wrong_return(runner, tmp_path):
    source = mutate("    return dict(logprobs=dlogprobs, probs=dprobs,", "    return dict(dlogprobs=dlogprobs, probs=dprobs,")
    ex = grade_entry(runner, write(tmp_path, source, "a"), "manual_backward", hidden=False)
    assert ex.score == ex.max_score  # `dlogprobs` keys are forgiven
    source = REFERENCE.replace("def manual_backward(ctx):", "def manual_backward(ctx):\n    return 42\n\n\ndef _unused(ctx):")
    ex = grade_entry(runner, write(tmp_path, source, "b"), "manual_backward", hidden=False)
    assert ex.score == 0 and "must return a dict" in ex.checks[0].message


def test_subtle_mistakes_show_on_the_public_cases_that_are_there_for_them(runner, tmp_path):
    """A dropped epsilon only shows where a unit's batch variance is small (public-1); n vs n-1 at n=32."""
    for i, step in enumerate(("bnvar", "bndiff2")):
        old, new, mistake = STEP_MISTAKES[step]
        ex = grade_entry(runner, write(tmp_path, mutate(old, new), f"s{i}"), "manual_backward", hidden=False)
        check = next(c for c in ex.checks if c.name == step)
        by_case = {c.case: c.verdict for c in check.cases}
        if step == "bnvar":
            assert by_case == {"public-0": "approx", "public-1": "wrong"}  # effect 5e-6 relative at var ~3
        else:
            assert by_case == {"public-0": "wrong", "public-1": "wrong"}
        assert check.mistake == mistake


def test_json_carries_local_verdicts_and_first_wrong_step(runner, tmp_path):
    import json
    from autograder.frontends.render import FORMATS
    old, new, _ = STEP_MISTAKES["bndiff"]
    exs = [e for e in exercises("backprop_ninja") if e.entry == "manual_backward"]
    data = json.loads(FORMATS["json"](grade(write(tmp_path, mutate(old, new)), exs, hidden=False, runner=runner)))
    (ex,) = data["exercises"]
    assert ex["first_wrong_step"] == "bndiff"
    checks = {c["name"]: c for c in ex["checks"]}
    assert checks["bndiff"]["local_verdict"] == "wrong" and checks["bndiff"]["mistake"] == "missing_branch"
    assert checks["hprebn"]["verdict"] == "wrong" and checks["hprebn"]["local_verdict"] in PASSING
    assert all(c["cases"][0]["local_verdict"] is not None for c in ex["checks"])


MORE_MISTAKES = {
    # step: ([(line, mistaken line)...], mistake id)
    "logprobs": ([("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[:, Yb] = -1.0 / n")], "wrong_index"),
    "C": ([("    dC.index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))\n", "    dC[Xb] = demb\n")],
          "missing_branch"),
    # db1 = dhprebn.sum(0, keepdim=True) is right (leading size-1 dimension): see test_lecture_solutions
    "b2": ([("db2 = dlogits.sum(0)", "db2 = dlogits.sum(1)")], "wrong_axis"),
    "probs": ([("dprobs = (1.0 / probs) * dlogprobs", "dprobs = 1.0 / probs")], "chain_rule"),
    "hpreact": ([("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1.0 - h)**2 * dh")], "tanh_derivative"),
    # with a wrong dlogit_maxes upstream, routing it to Yb instead of the argmax is visible
    "logits": ([STEP_MISTAKES["logit_maxes"][:2],
                ("logits.max(1).indices, num_classes", "Yb, num_classes")], "wrong_index"),
}


@pytest.mark.parametrize("step", sorted(MORE_MISTAKES))
def test_more_mistakes_of_exercise_1(runner, tmp_path, step):
    edits, mistake = MORE_MISTAKES[step]
    source = REFERENCE
    for old, new in edits:
        source = mutate(old, new, source)
    ex = grade_entry(runner, write(tmp_path, source), "manual_backward", hidden=False)
    check = next(c for c in ex.checks if c.name == step)
    assert check.local_verdict not in PASSING and check.mistake == mistake, (check.mistake, check.hint)
    if len(edits) == 1:
        assert ex.first_wrong_step == step
