"""backprop_ninja, grader side: the catalogue of known mistakes per exercise, with their matchers."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from autograder.core.compare import as_tensor
from autograder.core.diagnose import close, constant_factor, keepdim, name_factor, not_reduced, transposed
from autograder.core.exercise import DTYPE_DEFAULT, Mistake
from autograder.assignments.backprop_ninja.cases import CONSUMERS, Forward, Local, _amax, _usable, global_scale, local_expectation
from autograder.assignments.backprop_ninja.judges import carried_precision, fb_locals, local_verdict
from autograder.assignments.backprop_ninja.student_side import GRADIENT_NAMES


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


def _upstream_right(got, exp, case=None, name=None, context=None, tolerance=DTYPE_DEFAULT, **_):
    """The same judgement as the local verdict column (informative upstream included), at the exercise's
    tolerance."""
    fwd = (case.info or {}).get("forward") if case is not None else None
    if fwd is None or name not in CONSUMERS:
        return False
    outputs = (context or {}).get("outputs") or {}
    tolerance, _note = carried_precision(outputs, GRADIENT_NAMES, fwd.values["loss"].dtype, tolerance)
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


def _ce_plus_one(got, exp, case=None, **_):
    """`dlogits[range(n), Yb] += 1`: the target's term added instead of subtracted (before or after /n)."""
    g = as_tensor(got)
    if g is None or g.shape != exp.shape:
        return False
    n = case.info["n"]
    soft = torch.softmax(case.inputs["logits"], 1)
    onehot = F.one_hot(case.info["Yb"], exp.shape[1]).to(soft.dtype)
    return any(close(g.to(soft.dtype), wrong) for wrong in ((soft + onehot) / n, soft / n + onehot))


MISTAKES_2 = (
    Mistake("target_sign", "the target's term is subtracted: loss = -log(softmax[target]), so "
            "dlogits = softmax, then dlogits[range(n), Yb] -= 1, then /= n (`+= 1` pushes the right answer down)",
            _ce_plus_one),
    Mistake("wrong_index", "the -1 of the target goes at each row's own target, [range(n), Yb]", _ce_wrong_place),
    Mistake("missing_branch", "the loss uses each logit in the softmax's normaliser AND the target's logit "
            "directly", _ce_without_onehot),
    Mistake("scale", "the answer is a constant multiple of the right one (the loss is a mean over the batch)",
            _scale_named),
)


def _bn_variants(case) -> dict:
    x = case.inputs  # variants in the case's dtype, judged with its tolerance
    n, dh, raw, k = case.info["n"], x["dhpreact"], x["bnraw"], x["bngain"] * x["bnvar_inv"]
    return {
        "bessel": k / n * (n * dh - dh.sum(0) - raw * (dh * raw).sum(0)),
        "direct": k * dh,
        "no_mean": k / n * (n * dh - n / (n - 1) * raw * (dh * raw).sum(0)),
        "no_variance": k / n * (n * dh - dh.sum(0)),
        "no_gain": x["bnvar_inv"] / n * (n * dh - dh.sum(0) - n / (n - 1) * raw * (dh * raw).sum(0)),
    }


def _bn_no_gain(got, exp, case=None, **_):
    """The formula without bngain (often with bngain's gradient through bnraw forgotten)."""
    v = _bn_variants(case)["no_gain"]
    return close(got, v) and not close(v, exp)


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
    Mistake("bngain_missing", "hpreact = bngain * bnraw + bnbias: the gradient reaching bnraw is bngain * dhpreact, "
            "so the whole expression is multiplied by bngain", _bn_no_gain),
    Mistake("bessel", "the forward divides the variance by n-1 (Bessel's correction): the variance term has "
            "n/(n-1) * bnraw * (dhpreact * bnraw).sum(0)", _bn_bessel),
    Mistake("missing_branch", "hprebn is used three times (directly, in the mean, in the variance): add all paths",
            _bn_branch),
    Mistake("scale", "the answer is a constant multiple of the right one", _scale_named),
)


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


def _tanh_from_input(got, exp, case=None, **_):
    """`(1 - hpreact**2) * dh`: the derivative written with tanh's input where its output belongs."""
    x = case.inputs
    return close(got, (1 - x["hpreact"] ** 2) * x["dh"]) and not close(exp, (1 - x["hpreact"] ** 2) * x["dh"])


MISTAKES_TANH = (
    Mistake("uses_input_not_output", "h = tanh(hpreact) is the output: d tanh/dhpreact = 1 - h**2 (or "
            "1 - torch.tanh(hpreact)**2), not 1 - hpreact**2", _tanh_from_input),
    Mistake("chain_rule", "that is the local derivative only: multiply it by the upstream gradient dh", _tanh_no_chain),
    Mistake("tanh_derivative", "d tanh(x)/dx = 1 - tanh(x)**2 = 1 - h**2", _tanh_wrong_derivative),
)


MISTAKES_EMB = (
    Mistake("onehot_num_classes", "F.one_hot(Xb) without num_classes=num_embeddings has only as many classes as "
            "the largest index in this batch", _onehot_shrunk),
    Mistake("missing_branch", "a row of C picked several times by Xb must get the SUM of their gradients "
            "(`+=`, `index_add_`); `dC[Xb] = demb` keeps only one", lambda got, exp, case=None, **_:
            _index_assigned(got, exp, case)),
)


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
    if ok and close(torch.zeros_like(expected), expected, scale=max(_amax(expected), 1e-30)):
        # as the judge: a helper that returned ~0 leaves nothing to tell a right step from a wrong one
        return (f"{', '.join(wrong)} {'are' if len(wrong) > 1 else 'is'} wrong and gave ~0 here, so this step "
                "cannot be told right from wrong: it earns its points once "
                + ("those helpers are fixed" if len(wrong) > 1 else "that helper is fixed"))
    return bool(ok) and (f"{', '.join(wrong)} {'are' if len(wrong) > 1 else 'is'} wrong: fix "
                         f"{'them' if len(wrong) > 1 else 'it'} in {'their' if len(wrong) > 1 else 'its'} own "
                         "exercise; this step keeps its points")


MISTAKES_FB = (
    Mistake("depends_on", "this step is right on what your helper returned", _fb_depends),
    Mistake("onehot_num_classes", MISTAKES_EMB[0].hint, _onehot_shrunk, checks=("C",)),
    Mistake("scale", "the answer is a constant multiple of the right one", _scale_named),
    Mistake("located", "the gradients before this one are right, which narrows down where the error is",
            _fb_locate),
)
