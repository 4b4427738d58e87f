"""Why this number is wrong, element by element: one worked element of a wrong gradient, as the lecture's
chain-rule arithmetic.

    dhpreact[3, 7] = (1 - h[3, 7]**2) * dh[3, 7]
                   = (1 - 0.6215**2) * 0.01234 = 0.007573
    yours: 0.01234; true: 0.007573

For backprop ninja's tensors (exercise 1's 26 steps, and exercises 2-4's one-expression backwards): the
element where the student's answer is furthest from the right step applied to *their own* upstream
gradients (exercise 1: the step itself is what is wrong there), the upstream value(s), the local
derivative, the result of that arithmetic and the student's value (and the true one where it differs,
i.e. where the upstream is wrong too). Public cases only: the grader holds their inputs and the student's
outputs; a hidden case's values are never shown. Sums over a batch or a row show their first terms and
their count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from autograder.runtime.verdicts import WRONG

SHOWN_TERMS = 3


def _v(x) -> str:
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.4g}" if 1e-4 <= abs(x) < 1e5 else f"{x:.3e}"


def _p(x) -> str:
    """A value as a factor: negative ones in parentheses."""
    s = _v(x)
    return f"({s})" if s.startswith("-") else s


def _ix(idx) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


@dataclass
class Work:
    symbolic: str        # "(1 - h[3, 7]**2) * dh[3, 7]"
    numeric: str         # "(1 - 0.6215**2) * 0.01234"
    value: float         # what that arithmetic gives


def _sum(names: str, terms: list[tuple[str, str, float]], over: str) -> Work:
    """Σ over `over` of products; `terms` = (symbolic of one term, numeric of it, value)."""
    total = sum(t[2] for t in terms)
    shown = " + ".join(t[1] for t in terms[:SHOWN_TERMS])
    more = f" + … ({len(terms)} terms)" if len(terms) > SHOWN_TERMS else ""
    return Work(f"Σ_{over} {names}", shown + more, total)


# -- exercise 1: one rule per tensor (its consuming steps' local derivatives) ---------------------------------

def _rules():
    """name -> rule(V, U, k, idx) -> Work, with V the forward values, U the upstream gradients (the
    student's own), k the batch (n, Xb, Yb). The formulas are the lecture's."""
    def d(name):
        return "d" + name

    def logprobs(V, U, k, idx):
        i, j = idx
        hit = int(k.Yb[i]) == j
        return Work(f"-1/n * (j == Yb[{i}])  (n = {k.n}, Yb[{i}] = {int(k.Yb[i])})",
                    f"-1/{k.n} * {int(hit)}", -1.0 / k.n * hit)

    def probs(V, U, k, idx):
        p, u = float(V["probs"][idx]), float(U["logprobs"][idx])
        return Work(f"(1 / probs{_ix(idx)}) * dlogprobs{_ix(idx)}", f"(1 / {_v(p)}) * {_p(u)}", u / p)

    def counts_sum_inv(V, U, k, idx):
        i = idx[0]
        terms = [(None, f"{_p(V['counts'][i, j])}*{_p(U['probs'][i, j])}",
                  float(V["counts"][i, j]) * float(U["probs"][i, j])) for j in range(V["counts"].shape[1])]
        return _sum(f"counts[{i}, j] * dprobs[{i}, j]", terms, "j")

    def counts_sum(V, U, k, idx):
        c, u = float(V["counts_sum"][idx]), float(U["counts_sum_inv"][idx])
        return Work(f"-counts_sum{_ix(idx)}**-2 * dcounts_sum_inv{_ix(idx)}", f"-{_p(c)}**-2 * {_p(u)}", -u / c**2)

    def counts(V, U, k, idx):
        i, j = idx
        a, b, c = float(V["counts_sum_inv"][i, 0]), float(U["probs"][i, j]), float(U["counts_sum"][i, 0])
        return Work(f"counts_sum_inv[{i}, 0] * dprobs[{i}, {j}] + dcounts_sum[{i}, 0]  (counts is used twice)",
                    f"{_p(a)} * {_p(b)} + {_p(c)}", a * b + c)

    def norm_logits(V, U, k, idx):
        a, b = float(V["counts"][idx]), float(U["counts"][idx])
        return Work(f"counts{_ix(idx)} * dcounts{_ix(idx)}  (d/dx exp(x) = exp(x))", f"{_p(a)} * {_p(b)}", a * b)

    def logit_maxes(V, U, k, idx):
        i = idx[0]
        terms = [(None, f"{_p(U['norm_logits'][i, j])}", -float(U["norm_logits"][i, j]))
                 for j in range(U["norm_logits"].shape[1])]
        w = _sum(f"-dnorm_logits[{i}, j]", terms, "j")
        return Work(w.symbolic, "-(" + w.numeric + ")", w.value)

    def logits(V, U, k, idx):
        i, j = idx
        top = int(V["logits"][i].argmax())
        a, b = float(U["norm_logits"][i, j]), float(U["logit_maxes"][i, 0])
        return Work(f"dnorm_logits[{i}, {j}] + (j == argmax(logits[{i}])) * dlogit_maxes[{i}, 0]  "
                    f"(argmax = {top})", f"{_p(a)} + {int(j == top)} * {_p(b)}", a + (j == top) * b)

    def matmul_input(up, weight, x):
        def rule(V, U, k, idx):
            i, j = idx
            W, G = V[weight], U[up]
            terms = [(None, f"{_p(G[i, c])}*{_p(W[j, c])}", float(G[i, c]) * float(W[j, c])) for c in range(W.shape[1])]
            return _sum(f"d{up}[{i}, c] * {weight}[{j}, c]", terms, "c")
        return rule

    def matmul_weight(up, x):
        def rule(V, U, k, idx):
            i, j = idx
            X, G = V[x], U[up]
            terms = [(None, f"{_p(X[b, i])}*{_p(G[b, j])}", float(X[b, i]) * float(G[b, j])) for b in range(X.shape[0])]
            return _sum(f"{x}[b, {i}] * d{up}[b, {j}]", terms, "b")
        return rule

    def column_sum(up, times=None, sign=1.0):
        def rule(V, U, k, idx):
            j = idx[-1]
            G = U[up]
            if times is None:
                terms = [(None, _p(G[b, j]), sign * float(G[b, j])) for b in range(G.shape[0])]
                w = _sum(f"{'-' if sign < 0 else ''}d{up}[b, {j}]", terms, "b")
            else:
                X = V[times]
                terms = [(None, f"{_p(X[b, j])}*{_p(G[b, j])}", float(X[b, j]) * float(G[b, j]))
                         for b in range(G.shape[0])]
                w = _sum(f"{times}[b, {j}] * d{up}[b, {j}]", terms, "b")
            return w
        return rule

    def hpreact(V, U, k, idx):
        h, u = float(V["h"][idx]), float(U["h"][idx])
        return Work(f"(1 - h{_ix(idx)}**2) * dh{_ix(idx)}", f"(1 - {_p(h)}**2) * {_p(u)}", (1 - h * h) * u)

    def bnraw(V, U, k, idx):
        i, j = idx
        g, u = float(V["bngain"][0, j]), float(U["hpreact"][i, j])
        return Work(f"bngain[0, {j}] * dhpreact[{i}, {j}]", f"{_p(g)} * {_p(u)}", g * u)

    def bnvar(V, U, k, idx):
        j = idx[-1]
        v, u = float(V["bnvar"][0, j]), float(U["bnvar_inv"][0, j])
        return Work(f"-0.5 * (bnvar[0, {j}] + 1e-5)**-1.5 * dbnvar_inv[0, {j}]",
                    f"-0.5 * ({_v(v)} + 1e-5)**-1.5 * {_p(u)}", -0.5 * (v + 1e-5) ** -1.5 * u)

    def bndiff2(V, U, k, idx):
        i, j = idx
        u = float(U["bnvar"][0, j])
        return Work(f"1/(n-1) * dbnvar[0, {j}]  (n = {k.n}: Bessel's n-1)", f"1/{k.n - 1} * {_p(u)}", u / (k.n - 1))

    def bndiff(V, U, k, idx):
        i, j = idx
        a, b = float(V["bnvar_inv"][0, j]), float(U["bnraw"][i, j])
        c, e = float(V["bndiff"][i, j]), float(U["bndiff2"][i, j])
        return Work(f"bnvar_inv[0, {j}] * dbnraw[{i}, {j}] + 2 * bndiff[{i}, {j}] * dbndiff2[{i}, {j}]  "
                    "(bndiff is used twice)", f"{_p(a)} * {_p(b)} + 2 * {_p(c)} * {_p(e)}", a * b + 2 * c * e)

    def hprebn(V, U, k, idx):
        i, j = idx
        a, b = float(U["bndiff"][i, j]), float(U["bnmeani"][0, j])
        return Work(f"dbndiff[{i}, {j}] + 1/n * dbnmeani[0, {j}]  (n = {k.n}; hprebn is used twice)",
                    f"{_p(a)} + 1/{k.n} * {_p(b)}", a + b / k.n)

    def emb(V, U, k, idx):
        i, t, c = idx
        width = V["emb"].shape[2]
        u = float(U["embcat"][i, t * width + c])
        return Work(f"dembcat[{i}, {t * width + c}]  (embcat is emb viewed as (n, {V['embcat'].shape[1]}))",
                    _v(u), u)

    def C(V, U, k, idx):
        row, c = idx
        hits = [(b, t) for b in range(k.Xb.shape[0]) for t in range(k.Xb.shape[1]) if int(k.Xb[b, t]) == row]
        terms = [(None, _p(U["emb"][b, t, c]), float(U["emb"][b, t, c])) for b, t in hits]
        if not terms:
            return Work(f"0  (character {row} is not in this batch)", "0", 0.0)
        return _sum(f"demb[b, t, {c}] over the (b, t) with Xb[b, t] == {row}", terms, "b,t")

    return {
        "logprobs": logprobs, "probs": probs, "counts_sum_inv": counts_sum_inv, "counts_sum": counts_sum,
        "counts": counts, "norm_logits": norm_logits, "logit_maxes": logit_maxes, "logits": logits,
        "h": matmul_input("logits", "W2", "h"), "W2": matmul_weight("logits", "h"), "b2": column_sum("logits"),
        "hpreact": hpreact, "bngain": column_sum("hpreact", times="bnraw"), "bnbias": column_sum("hpreact"),
        "bnraw": bnraw, "bnvar_inv": column_sum("bnraw", times="bndiff"), "bnvar": bnvar, "bndiff2": bndiff2,
        "bndiff": bndiff, "bnmeani": column_sum("bndiff", sign=-1.0), "hprebn": hprebn,
        "embcat": matmul_input("hprebn", "W1", "embcat"), "W1": matmul_weight("hprebn", "embcat"),
        "b1": column_sum("hprebn"), "emb": emb, "C": C,
    }


RULES = _rules()


# -- choosing the element ----------------------------------------------------------------------------------

def _same_shape(got, like):
    """The student's tensor in `like`'s shape (leading size-1 dimensions forgiven), or None."""
    from autograder.core.compare import as_tensor
    t = as_tensor(got)
    if t is None or not t.is_floating_point() or t.numel() != like.numel():
        return None
    if tuple(t.shape) != tuple(like.shape) and t.squeeze().shape != like.squeeze().shape:
        return None
    return t.reshape(like.shape).to(like.dtype)


def _worst(got, target) -> tuple:
    import torch
    diff = (got.double() - target.double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    flat = int(diff.flatten().argmax())
    # (by hand: torch.unravel_index imports torch.fx on first use, ~3 s)
    index = []
    for size in reversed(tuple(target.shape)):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


@dataclass
class Worked:
    name: str            # the tensor, "hpreact"
    index: tuple
    case: str            # "public case 1"
    upstream: str        # what the upstream values are ("your own dh")
    work: Work
    yours: float
    true: float

    def lines(self) -> list[str]:
        lhs = f"d{self.name}{_ix(self.index)}"
        pad = " " * len(lhs)
        out = [f"worked element, {self.case} ({self.upstream}):",
               f"  {lhs} = {self.work.symbolic}",
               f"  {pad} = {self.work.numeric} = {_v(self.work.value)}",
               f"  yours: {_v(self.yours)}" + (f"; true: {_v(self.true)}" if _v(self.true) != _v(self.work.value)
                                               else "")]
        return out


def _case_name(case, kept) -> str:
    publics = [c.id for c, _, _ in kept]
    number = publics.index(case.id) + 1 if case.id in publics else 1
    return f"public case {number}" + (f", {case.label}" if case.label else "")


def worked_element(exercise, kept: list) -> Worked | None:
    """One worked element for the exercise's first wrong gradient on a public case, or None (nothing
    wrong, no public case kept, not a tensor gradient we can work through, shapes that differ)."""
    try:
        return _worked_element(exercise, kept)
    except Exception:  # noqa: the student's values reach here; a worked element is a bonus, never a crash
        return None


def _wrong_public_case(check, kept):
    wrong = {c.case for c in check.cases if not c.hidden and WRONG in (c.verdict, c.local_verdict)}
    return next(((case, outputs, truth) for case, outputs, truth in kept
                 if not case.hidden and (case.id in wrong or not check.cases)), None)


def _worked_element(exercise, kept: list) -> Worked | None:
    if not kept:
        return None
    short = exercise.id.split(".", 1)[-1]
    if exercise.id.startswith("graphs.") and short in GATES:
        return _gate(exercise, kept, short)
    if not exercise.id.startswith("backprop_ninja."):
        return None
    if short == "manual_backward":
        name = exercise.first_wrong_step
        check = next((c for c in exercise.checks if c.name == name), None)
        if check is None or name not in RULES:
            return None
        found = _wrong_public_case(check, kept)
        if found is None:
            return None
        case, outputs, truth = found
        return _exercise1(case, outputs, truth, name, _case_name(case, kept))
    check = next((c for c in exercise.checks if c.verdict == WRONG), None)
    if check is None:
        return None
    found = _wrong_public_case(check, kept)
    if found is None:
        return None
    case, outputs, truth = found
    builder = {"cross_entropy_backward": _cross_entropy, "tanh_backward": _tanh,
               "batchnorm_backward": _batchnorm, "embedding_backward": _embedding}.get(short)
    return builder(case, outputs, truth, _case_name(case, kept)) if builder else None


def _exercise1(case, outputs, truth, name, label) -> Worked | None:
    from types import SimpleNamespace

    from autograder.assignments.backprop_ninja.cases import CONSUMERS, _usable, local_expectation
    fwd = case.info["forward"]
    true = truth[name]
    got = _same_shape(outputs.get(name), true)
    if got is None:
        return None
    local = local_expectation(fwd, name, outputs)
    target = local.expected if local is not None else true
    idx = _worst(got, target)
    upstream = {}
    for step in CONSUMERS[name]:
        if step.out == "loss":
            continue
        up = _usable(outputs.get(step.out), fwd.values[step.out]) if local is not None else None
        upstream[step.out] = up if up is not None else fwd.grads[step.out]
    ups = ", ".join("d" + s for s in upstream) or "the loss"
    said = (f"with your own {ups}" if local is not None else f"with the true {ups}") if upstream else "from the loss"
    work = RULES[name](fwd.values, upstream, SimpleNamespace(n=fwd.k.n, Xb=fwd.k.Xb, Yb=fwd.k.Yb), idx)
    return Worked(name, idx, label, said, work, float(got[idx]), float(true[idx]))


def _cross_entropy(case, outputs, truth, label):
    import torch
    true = truth["logits"]
    got = _same_shape(outputs.get("logits"), true)
    if got is None:
        return None
    idx = _worst(got, true)
    i, j = idx
    logits, Yb = case.inputs["logits"], case.inputs["Yb"]
    n = logits.shape[0]
    p = float(torch.softmax(logits.double(), 1)[i, j])
    hit = int(int(Yb[i]) == j)
    work = Work(f"(softmax(logits)[{i}, {j}] - (j == Yb[{i}])) / n  (Yb[{i}] = {int(Yb[i])}, n = {n})",
                f"({_v(p)} - {hit}) / {n}", (p - hit) / n)
    return Worked("logits", idx, label, "from the loss", work, float(got[idx]), float(true[idx]))


def _tanh(case, outputs, truth, label):
    true = truth["hpreact"]
    got = _same_shape(outputs.get("hpreact"), true)
    if got is None:
        return None
    idx = _worst(got, true)
    h, u = float(case.inputs["h"][idx]), float(case.inputs["dh"][idx])
    work = Work(f"(1 - h{_ix(idx)}**2) * dh{_ix(idx)}", f"(1 - {_p(h)}**2) * {_p(u)}", (1 - h * h) * u)
    return Worked("hpreact", idx, label, "dh given", work, float(got[idx]), float(true[idx]))


def _batchnorm(case, outputs, truth, label):
    true = truth["hprebn"]
    got = _same_shape(outputs.get("hprebn"), true)
    if got is None:
        return None
    idx = _worst(got, true)
    i, j = idx
    x = case.inputs
    n = x["dhpreact"].shape[0]
    g, vi = float(x["bngain"][0, j]), float(x["bnvar_inv"][0, j])
    u, r = float(x["dhpreact"][i, j]), float(x["bnraw"][i, j])
    s1 = float(x["dhpreact"][:, j].double().sum())
    s2 = float((x["dhpreact"][:, j].double() * x["bnraw"][:, j].double()).sum())
    value = g * vi / n * (n * u - s1 - n / (n - 1) * r * s2)
    work = Work(f"bngain[0, {j}] * bnvar_inv[0, {j}] / n * (n * dhpreact[{i}, {j}] - Σ_b dhpreact[b, {j}] "
                f"- n/(n-1) * bnraw[{i}, {j}] * Σ_b dhpreact[b, {j}] * bnraw[b, {j}])  (n = {n})",
                f"{_p(g)} * {_p(vi)} / {n} * ({n} * {_p(u)} - {_p(s1)} - {n}/{n - 1} * {_p(r)} * {_p(s2)})", value)
    return Worked("hprebn", idx, label, "dhpreact given", work, float(got[idx]), float(true[idx]))


def _embedding(case, outputs, truth, label):
    true = truth["C"]
    got = _same_shape(outputs.get("C"), true)
    if got is None:
        return None
    idx = _worst(got, true)
    row, c = idx
    Xb, demb = case.inputs["Xb"], case.inputs["demb"]
    hits = [(b, t) for b in range(Xb.shape[0]) for t in range(Xb.shape[1]) if int(Xb[b, t]) == row]
    terms = [(None, _p(demb[b, t, c]), float(demb[b, t, c])) for b, t in hits]
    work = _sum(f"demb[b, t, {c}] over the (b, t) with Xb[b, t] == {row}", terms, "b,t") if terms else \
        Work(f"0  (character {row} is not in this batch)", "0", 0.0)
    return Worked("C", idx, label, "demb given", work, float(got[idx]), float(true[idx]))


# -- the CS231n gates (graphs): one input of the batch of independent scalar cases ---------------------------

GATES = ("AddGate", "MultiplyGate", "MaxGate", "SigmoidGate")


def _gate(exercise, kept, gate: str) -> Worked | None:
    import torch
    check = next((c for c in exercise.checks if c.verdict == WRONG and c.name in ("dx", "dy")), None)
    if check is None:
        return None
    found = _wrong_public_case(check, kept)
    if found is None:
        return None
    case, outputs, truth = found
    name = check.name
    true = truth[name].double()
    got = _same_shape(outputs.get(name), true)
    if got is None:
        return None
    (i,) = _worst(got, true)
    x, dout = float(case.inputs["x"][i]), float(case.inputs["dout"][i])
    y = float(case.inputs["y"][i]) if "y" in case.inputs else None
    own, other = (x, y) if name == "dx" else (y, x)
    me, them = ("x", "y") if name == "dx" else ("y", "x")
    if gate == "AddGate":
        work = Work(f"1 * dout[{i}]  (add distributes dout to both inputs)", f"1 * {_p(dout)}", dout)
    elif gate == "MultiplyGate":
        work = Work(f"{them}[{i}] * dout[{i}]  (mul switches: each input gets the other one)",
                    f"{_p(other)} * {_p(dout)}", other * dout)
    elif gate == "MaxGate":
        wins = own > other
        work = Work(f"({me}[{i}] > {them}[{i}]) * dout[{i}]  (max routes dout to the larger input; "
                    f"{me} = {_v(own)}, {them} = {_v(other)})", f"{int(wins)} * {_p(dout)}", wins * dout)
    else:
        sig = float(torch.sigmoid(torch.tensor(x, dtype=torch.float64)))
        work = Work(f"s * (1 - s) * dout[{i}]  (s = sigmoid(x[{i}]) = {_v(sig)})",
                    f"{_v(sig)} * (1 - {_v(sig)}) * {_p(dout)}", sig * (1 - sig) * dout)
    return Worked(name[1:], (i,), _case_name(case, kept), "dout given", work, float(got[i]), float(true[i]))
