"""backprop_ninja, grader side: the judges. Each check is judged globally (against the truth) and, where
that is informative, locally (the right step applied to the student's own inputs): cascade-free within
exercise 1, across functions in forward_backward (its helpers), and for train (its loop)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from autograder.core.compare import Comparison, ERROR, EXACT, NOT_IMPLEMENTED, Tolerance, WRONG, as_tensor, compare
from autograder.core.diagnose import close
from autograder.core.exercise import DTYPE_DEFAULT, Case, DtypeTolerance, takes_tolerance
from autograder.assignments.backprop_ninja.cases import (CONSUMERS, STEP_ORDER, Forward, Local, _amax, _batches, _usable,
                                                       global_scale, local_expectation)
from autograder.assignments.backprop_ninja.student_side import GRADIENT_NAMES, PARAMETER_NAMES


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
        if close(up, fwd.grads[step.out], scale=global_scale(fwd, step.out)):
            continue  # the right upstream, whatever it looks like (dlogit_maxes is ~0 everywhere)
        flat = up.flatten()
        if flat.numel() > 1 and bool((flat == flat[0]).all()):
            return f"your upstream d{step.out} is constant ({float(flat[0]):.3g} everywhere)"
        # A copy of the tensor itself (`dX = X`). Not of other tensors: some gradients are legitimately
        # proportional to a forward value (dcounts_sum = counts_sum_inv / n).
        if close(up, fwd.values[step.out]):
            return f"your upstream d{step.out} is a copy of {step.out} itself, not its gradient"
    return ""


ZERO_BY_THE_MATH = ("zero_by_the_math: the true gradient here is ~0 (the math cancels it), so a zero answer cannot "
                    "tell work from none: it earns its points once the gradient it is computed from, d{source}, is "
                    "right")


def zero_truth(expected: torch.Tensor, scale: float, tolerance: Tolerance | None = None) -> bool:
    """Would an answer of zeros pass this check (dlogit_maxes and db1 are mathematically 0)?"""
    return close(torch.zeros_like(expected), expected, tol=tolerance, scale=scale)


def unearned_zero(c: Comparison, source: str) -> Comparison:
    """A passing check that a zero answer would pass too, whose source gradient is not right: it earns nothing
    (doing nothing earns nothing), and says why."""
    c.verdict, c.local_verdict = WRONG, WRONG
    c.message = "; ".join(m for m in (c.message, ZERO_BY_THE_MATH.format(source=source)) if m)
    return c


def carried_precision(outputs: dict, names, dtype: torch.dtype,
                      tolerance: Tolerance | DtypeTolerance = DTYPE_DEFAULT) -> tuple[Tolerance, str]:
    """Where some of the student's gradients are in a lower precision than the case (`torch.zeros(probs.shape)`
    is float32 on a float64 case), that rounding flows into every gradient computed from them: all are
    judged at that precision, with a note. (The exercise's tolerance for the case's dtype, '') where all are at
    the case's precision."""
    low = {}
    for name in names:
        t = outputs.get(name)
        if isinstance(t, torch.Tensor) and t.is_floating_point() and torch.finfo(t.dtype).eps > torch.finfo(dtype).eps:
            low.setdefault(t.dtype, []).append(name)
    if not low:
        return tolerance.for_dtype(dtype), ""
    worst_dtype = max(low, key=lambda d: torch.finfo(d).eps)
    a, b = tolerance.for_dtype(worst_dtype), tolerance.for_dtype(dtype)
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
    if not lc.passed:
        lc = _broadcast_by_upstream(fwd, name, got, outputs, local, tolerance) or lc
    if lc.passed:
        why = uninformative(fwd, name, local, outputs)
        if why:
            return None, why
    return lc, ""


def _broadcast_by_upstream(fwd: Forward, name: str, got, outputs: dict, local: Local,
                           tolerance: Tolerance | None) -> Comparison | None:
    """A wrongly SHAPED upstream is a wrong upstream like any other (issue 17): `dcounts_sum_inv` without
    keepdim is (n,) for (n, 1), and the right next line, `(-counts_sum**-2) * dcounts_sum_inv`, broadcasts it
    to (n, n); that step is right given what it was fed, its diagonal being the right step applied to the
    upstream's values. A comparison that passes where this is so, None elsewhere."""
    g = as_tensor(got)
    if g is None or g.dim() != 2 or g.shape[0] != g.shape[1] or g.shape[0] != local.expected.numel() \
            or local.expected.numel() < 2:
        return None
    dropped = [step.out for step in CONSUMERS[name] if step.out != "loss"
               and isinstance(outputs.get(step.out), torch.Tensor)
               and tuple(outputs[step.out].shape) != tuple(fwd.values[step.out].shape)
               and outputs[step.out].numel() == fwd.values[step.out].numel()]
    if not dropped:
        return None
    lc = compare(name, g.diagonal().reshape(local.expected.shape), local.expected, scale=local.scale,
                 tolerance=tolerance)
    if not lc.passed:
        return None
    up = outputs[dropped[0]]
    lc.message = (f"correct given your d{dropped[0]} of shape {tuple(up.shape)} (not "
                  f"{tuple(fwd.values[dropped[0]].shape)}): the right step broadcast it to {tuple(g.shape)}")
    return lc


def not_reached(case: Case, raised: dict, outputs: dict) -> tuple[set, str, str]:
    """From the driver's record of an exception: the names not reached, the message for the first of them
    (the exception, once, at its line) and for the rest."""
    listed = raised.get("assigned")
    assigned = {a for a in listed if isinstance(a, str)} if isinstance(listed, (list, tuple)) else set()
    missing = {name for name in GRADIENT_NAMES if ("d" + name) not in assigned and outputs.get(name) is None}
    error = str(raised.get("error") or "an exception")
    if case.hidden:  # the student's message could print hidden inputs
        error = error.split(":", 1)[0]
    line = raised.get("line")
    at = f" at line {line}" if isinstance(line, int) and not isinstance(line, bool) else ""
    code = str(raised.get("code") or "")
    first = f"raised {error}{at}" + (f": `{code}`" if code and not case.hidden else "")
    return missing, first, f"not reached: {error.split(':', 1)[0]}{at}"


@takes_tolerance
def judge_manual_backward(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    fwd: Forward = case.info["forward"]
    raised = outputs.get("raised") if isinstance(outputs.get("raised"), dict) else None
    missing, first_message, rest_message = not_reached(case, raised, outputs) if raised else (set(), "", "")
    shown = False
    comparisons = []
    tolerance, precision_note = carried_precision(outputs, GRADIENT_NAMES, fwd.values["loss"].dtype, tolerance)
    zero_checks = []
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
        if c.passed and zero_truth(truth[name], global_scale(fwd, name), tolerance):
            zero_checks.append(c)
        if c.passed:
            c.local_verdict = c.verdict
        elif c.verdict != NOT_IMPLEMENTED:
            lc, why = local_verdict(fwd, name, got, outputs, tolerance)
            if lc is not None:
                c.local_verdict = lc.verdict
                c.details["local_maxdiff"] = lc.maxdiff
                if lc.passed and lc.message.startswith("correct given"):  # said in the student's terms
                    c.message = f"{lc.message} ({c.message})" if c.message else lc.message
            elif why:
                c.details["no_local_credit"] = why
        comparisons.append(c)
    # A check a zero answer passes (its truth is ~0) earns where the gradients it is computed from earn theirs
    # (right, or right given their own upstream): zeros everywhere earn nothing, a right step keeps its points.
    by_name = {c.name: c for c in comparisons}
    for c in zero_checks:
        sources = [step.out for step in CONSUMERS[c.name] if step.out != "loss"]
        unearned = [s for s in sources if s in by_name and not (by_name[s].passed or by_name[s].local_verdict in
                                                                 ("exact", "approx"))]
        if unearned:
            unearned_zero(c, unearned[0])
    return comparisons


def batchnorm_scale(case: Case, expected: torch.Tensor) -> float:
    """The formula's largest summand (the direct term gain*inv*dh, or the variance term up to
    gain*inv*max|bnraw|^2*max|dh|*n/(n-1)): at batch 2 the three terms cancel almost exactly."""
    x, n = case.inputs, case.info["n"]
    direct = _amax(x["bngain"] * x["bnvar_inv"]) * _amax(x["dhpreact"])
    return max(_amax(expected), direct * max(1.0, _amax(x["bnraw"]) ** 2 * n / max(n - 1, 1)))


@takes_tolerance
def judge_batchnorm(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """At the scale of the formula's largest summand (`batchnorm_scale`)."""
    return [compare("hprebn", outputs.get("hprebn"), truth["hprebn"], scale=batchnorm_scale(case, truth["hprebn"]),
                    tolerance=tolerance)]


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


@takes_tolerance
def judge_forward_backward(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """Each parameter gradient globally, and locally: where it is wrong only because a helper it calls is
    (the student's cross_entropy_backward, tanh_backward, batchnorm_backward, embedding_backward, each
    graded in its own exercise), it keeps its points: "correct; depends on X, which is wrong"."""
    fwd: Forward = case.info["forward"]
    raised = outputs.get("raised") if isinstance(outputs.get("raised"), dict) else None
    try:
        locals_ = fb_locals(fwd, outputs)
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError, IndexError):
        locals_ = {}  # records not shaped as the driver gives them: judged globally only
    comparisons = []
    calls = outputs.get("calls") if isinstance(outputs.get("calls"), dict) else {}
    seen = {**{n: outputs.get(n) for n in STEP_ORDER[1:]},
            **{h: rec.get("out") for h, rec in calls.items() if isinstance(rec, dict)}}
    exercise_tolerance = tolerance
    tolerance, precision_note = carried_precision(seen, list(seen), fwd.values["loss"].dtype, tolerance)
    zero_checks = []
    for name in STEP_ORDER:
        got = outputs.get(name)
        if raised and got is None:
            error = str(raised.get("error") or "an exception")
            error = error.split(":", 1)[0] if case.hidden else error
            line = raised.get("line")
            at = f" at line {line}" if isinstance(line, int) and not isinstance(line, bool) else ""
            comparisons.append(Comparison(name, ERROR, expected_shape=tuple(truth[name].shape), mistake="exception",
                                          message=f"not reached: {error}{at}"))
            continue
        c = compare(name, got, truth[name], scale=None if name == "loss" else global_scale(fwd, name),
                    tolerance=exercise_tolerance if name == "loss" else tolerance)
        if precision_note and name != "loss" and "precision" not in c.message and c.verdict != NOT_IMPLEMENTED:
            c.message = "; ".join(m for m in (c.message, precision_note) if m)
        if name != "loss":
            c.local_verdict = c.verdict if c.passed else None
        if name != "loss" and c.passed and zero_truth(truth[name], global_scale(fwd, name), tolerance):
            zero_checks.append(c)
        if not c.passed and name in locals_ and c.verdict != NOT_IMPLEMENTED:
            expected, deps = locals_[name]
            wrong = [helper for helper, right in deps if not right]
            lc = compare(name, got, expected, scale=max(_amax(expected), global_scale(fwd, name)), tolerance=tolerance)
            informative = not close(torch.zeros_like(expected), expected, scale=max(_amax(expected), 1e-30))
            if lc.passed and wrong and informative:
                c.local_verdict = lc.verdict
                c.message = f"correct; depends on {', '.join(wrong)}, {'which are' if len(wrong) > 1 else 'which is'} wrong" \
                    + (f" ({c.message})" if c.message else "")
                c.details["depends_on"] = wrong
            elif not lc.passed:
                c.local_verdict = WRONG
        comparisons.append(c)
    # db1 is mathematically 0 (and at batch 2 more of them are ~0): such a check earns where the nearest check
    # upstream of it that zeros would not pass earns (right, or right given the student's helpers): zeros
    # everywhere earn nothing.
    by_name = {c.name: c for c in comparisons}
    zero_names = {c.name for c in zero_checks}
    for c in zero_checks:
        source = next((by_name[s] for s in FB_UPSTREAM.get(c.name, ()) if s in by_name and s not in zero_names), None)
        if source is None or not (source.passed or source.local_verdict in ("exact", "approx")):
            unearned_zero(c, source.name if source is not None else "loss")
    return comparisons


# forward_backward's parameter gradients, each with the ones computed before it on its path (nearest first).
FB_UPSTREAM = {"b1": ("W1", "bngain", "bnbias", "W2"), "W1": ("bngain", "bnbias", "W2"),
               "C": ("W1", "bngain", "bnbias", "W2"), "bngain": ("W2",), "bnbias": ("W2",), "b2": ("W2",),
               "W2": ()}




def loop_verdict(case: Case, outputs: dict) -> tuple[str, str]:
    """See `_loop_verdict`; records that do not have the shape a driver gives are judged wrong, never raise."""
    try:
        return _loop_verdict(case, outputs)
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError, IndexError):
        return WRONG, "train's steps could not be judged on your own gradients"


def _loop_verdict(case: Case, outputs: dict) -> tuple[str, str]:
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
        Xb, Yb = as_tensor(step.get("Xb")), as_tensor(step.get("Yb"))
        if Xb is None or Yb is None or Xb.shape != x["X"][ix].shape or Yb.shape != x["Y"][ix].shape \
                or not torch.equal(Xb, x["X"][ix]) or not torch.equal(Yb, x["Y"][ix]):
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


@takes_tolerance
def judge_train(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
    losses = outputs.get("losses")
    curve = compare("losses", losses, truth["losses"], tolerance=tolerance)
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
    # The loop is judged only where it can change something: a check that failed globally (on a right curve
    # it would cost ~4,000 comparisons per submission and decide nothing).
    if curve.verdict != NOT_IMPLEMENTED and curve.passed and lowers.passed:
        for c in (curve, lowers):
            c.local_verdict = c.verdict
    elif curve.verdict != NOT_IMPLEMENTED:
        verdict, why = loop_verdict(case, outputs)
        for c in (curve, lowers):
            c.local_verdict = verdict if not c.passed else c.verdict
            if not c.passed:
                c.message = f"{c.message}; the loop: {why}" if verdict == WRONG else \
                    f"{c.message}; correct loop: {why}, so a wrong backward costs only its own exercises"
    return [curve, lowers]
