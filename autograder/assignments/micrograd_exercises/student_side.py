"""micrograd_exercises, the student's side: drivers that call the student's functions and `Value` on one
case's inputs and return plain floats. Runs in the student's process with torch blocked: no truth,
tolerance or hint. Each part is guarded (micrograd's `_attempt`), so a stub or an exception in one
operation costs that check only.

The functions the student differentiates (`FUNCTIONS`) live here, not in the student's file: a
numerical gradient must work for any f(a, b, c), and the student's copy of the lecture's f cannot change
what is measured."""
from __future__ import annotations

import math
import os
import signal
import traceback

from autograder.runtime.verdicts import NOT_IMPLEMENTED_VALUE

# This file is staged alone into the student's process: it imports only the runtime (autograder.runtime.verdicts),
# so the guards below are micrograd's (`assignments/micrograd/student_side.py`), restated.


class _OutOfTime(BaseException):
    """Raised by the per-part alarm; BaseException so that a student's `except Exception` cannot eat it."""


class _NotANumber(Exception):
    pass


def _describe(exc: BaseException, root: str) -> dict:
    """{"message": "TypeError: ... (micrograd_exercises.py, line 41, in exp)", "short": the same without the
    exception's own text, which could print a hidden case's inputs}."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root + os.sep)]
    where = f" ({os.path.relpath(frames[-1].filename, root)}, line {frames[-1].lineno}, in {frames[-1].name})" \
        if frames else ""
    if isinstance(exc, (SystemExit, RecursionError)):
        message = f"{'called sys.exit()' if isinstance(exc, SystemExit) else 'RecursionError'}{where}"
        return {"message": message, "short": message}
    text = str(exc)
    text = text if len(text) <= 200 else text[:200] + "..."
    return {"message": f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}",
            "short": f"{type(exc).__name__}{where}"}


def _attempt(fn, root: str, seconds: float = 1.0):
    """fn(), or what went wrong as data: NOT_IMPLEMENTED, or {"failure": error|timeout|wrong, "message": ...}."""
    def out_of_time(signum, frame):
        raise _OutOfTime()
    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except NotImplementedError:
        return NOT_IMPLEMENTED_VALUE
    except _OutOfTime:
        return {"failure": "timeout", "message": f"did not finish within {seconds:g} s (an endless loop?)"}
    except _NotANumber as exc:
        return {"failure": "wrong", "message": str(exc)}
    except (Exception, SystemExit) as exc:  # noqa: one part's failure must not end the others
        return {"failure": "error", **_describe(exc, root)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _num(x, what: str) -> float:
    """A number out of the student's code; a Value where a float belongs is a classic bug, named as such."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if hasattr(x, "data") and hasattr(x, "grad"):
        raise _NotANumber(f"{what} is a Value, not a number: use .data")
    # (not the type's name: a class the student named could carry a hidden case's inputs out)
    raise _NotANumber(f"{what} is not a number")

MODULE = "micrograd_exercises"


def lecture_f(a, b, c):
    return -a**3 + math.sin(3*b) - 1.0/c + b**2.5 - a**0.5


def other_f(a, b, c):
    """A second function, so that a numerical gradient that is really an analytic one shows."""
    return a * b * c + math.exp(0.5 * a) - math.log(b) + c**3 / 3.0


FUNCTIONS = {"lecture": lecture_f, "other": other_f}
COMPONENTS = ("df_da", "df_db", "df_dc")


def _triple(value, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise TypeError(f"{what} must return a list [df/da, df/db, df/dc], got {type(value).__name__}"
                        + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else ""))
    return [_num(v, f"{what}[{i}]") for i, v in enumerate(value)]


def _root(module) -> str:
    return os.path.dirname(os.path.abspath(module.__file__))


def _gradients(module, inputs: dict, call) -> dict:
    """{df_da: [...], df_db: [...], df_dc: [...]} over the case's points; a failure is the whole case's."""
    rows = _attempt(lambda: [_triple(call(*p), inputs["entry"]) for p in inputs["points"]], _root(module),
                    seconds=5.0)
    if not isinstance(rows, list):
        return {k: rows for k in COMPONENTS}
    return {k: [r[i] for r in rows] for i, k in enumerate(COMPONENTS)}


def run_gradf(module, inputs: dict) -> dict:
    return _gradients(module, {**inputs, "entry": "gradf(a, b, c)"}, module.gradf)


def run_numerical_grad(module, inputs: dict) -> dict:
    f = FUNCTIONS[inputs["f"]]
    return _gradients(module, {**inputs, "entry": "numerical_grad(f, a, b, c)"},
                      lambda a, b, c: module.numerical_grad(f, a, b, c))


def run_numerical_grad2(module, inputs: dict) -> dict:
    f, h = FUNCTIONS[inputs["f"]], inputs["h"]
    return _gradients(module, {**inputs, "entry": "numerical_grad2(f, a, b, c, h)"},
                      lambda a, b, c: module.numerical_grad2(f, a, b, c, h))


# -- section 2: the Value class ----------------------------------------------------------------------------

# check name -> (the methods it needs, operand kinds: n a Value, c a number, the operation)
OPS = {
    "a.exp()": (("exp",), "n", lambda a: a.exp()),
    "a.log()": (("log",), "n", lambda a: a.log()),
    "a ** k": (("__pow__",), "nc", lambda a, k: a**k),
    "a * b": (("__mul__",), "nn", lambda a, b: a * b),
    "a / b": (("__truediv__",), "nn", lambda a, b: a / b),
    "-a": (("__neg__",), "n", lambda a: -a),
    "a - b": (("__sub__",), "nn", lambda a, b: a - b),
    "c + a": (("__radd__",), "cn", lambda c, a: c + a),
}


def _nodes(out) -> list:
    """Every node of the graph under `out`, in topological order (inputs first)."""
    order, visited, stack = [], set(), [(out, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
        elif id(v) not in visited:
            visited.add(id(v))
            stack.append((v, True))
            stack.extend((c, False) for c in getattr(v, "_prev", ()) if id(c) not in visited)
    return order


def propagate(outputs: list, upstreams: list[float], leaves: list) -> None:
    """The gradient of sum(upstream_i * output_i) into the leaves, with this driver's own walk (so an op's
    backward is judged on its own, and the student's backward() is not needed): one pass per output, every
    non-leaf gradient reset before each pass, the leaves' accumulating."""
    leaf_ids = {id(v) for v in leaves}
    for out, up in zip(outputs, upstreams):
        order = _nodes(out)
        for v in order:
            if id(v) not in leaf_ids:
                v.grad = 0.0
        out.grad = up
        for v in reversed(order):
            v._backward()


def _one_op(Value, name: str, point: list[float], upstream: float) -> list[float]:
    needs, kinds, op = OPS[name]
    if any(not callable(getattr(Value, m, None)) for m in needs):  # the template's Value has only __add__
        raise NotImplementedError
    leaves = [Value(x) for x, kind in zip(point, kinds) if kind == "n"]
    it = iter(leaves)
    args = [next(it) if kind == "n" else x for x, kind in zip(point, kinds)]
    out = op(*args)
    if not (hasattr(out, "data") and hasattr(out, "_backward")):
        raise TypeError(f"{name} returned a {type(out).__name__}, not a Value")
    propagate([out], [upstream], leaves)
    return [_num(out.data, f"({name}).data")] + [_num(v.grad, f"the input's grad after ({name}) backward")
                                                    for v in leaves]


def run_ops(module, inputs: dict) -> dict:
    Value = module.Value
    out = {}
    for name, points in inputs["ops"].items():
        out[name] = _attempt(lambda: [_one_op(Value, name, p, u) for p, u in zip(points, inputs["upstream"])],
                             _root(module))
    return out


def lecture_softmax(logits):
    """The notebook's own softmax (its code is given there), run on the student's Value: what the student's
    softmax should give with the student's own operations."""
    counts = [logit.exp() for logit in logits]
    denominator = sum(counts)
    return [c / denominator for c in counts]


def _data_and_grads(module, logits_values: list[float], upstream: list[float], build) -> dict:
    Value = module.Value
    logits = [Value(x) for x in logits_values]
    try:
        outs = build(logits)
    except AttributeError as exc:  # an operation the Value class does not have yet (the template's)
        if getattr(exc, "name", None) in ("exp", "log"):
            raise NotImplementedError from None
        raise
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    data = [_num(getattr(o, "data", o), "an output's .data") for o in outs]
    if not all(hasattr(o, "_backward") for o in outs):
        raise TypeError("the outputs are not Values: build them from the logits' Value operations")
    propagate(list(outs), upstream[: len(outs)], logits)
    return {"data": data, "grad": [_num(v.grad, "a logit's grad") for v in logits]}


def _split(result, data_key: str, grad_key: str) -> dict:
    if isinstance(result, dict) and "data" in result:
        return {data_key: result["data"], grad_key: result["grad"]}
    return {data_key: result, grad_key: result}


def run_softmax(module, inputs: dict) -> dict:
    root = _root(module)
    student = _attempt(lambda: _data_and_grads(module, inputs["logits"], inputs["upstream"], module.softmax), root)
    if student is NOT_IMPLEMENTED_VALUE:
        return {"probs": student, "dlogits": student}
    lecture = _attempt(lambda: _data_and_grads(module, inputs["logits"], inputs["upstream"], lecture_softmax), root)
    return {**_split(student, "probs", "dlogits"), "_lecture": lecture if isinstance(lecture, dict) else None}


def run_nll(module, inputs: dict) -> dict:
    """The student's nll on probabilities made by the lecture's softmax (with the student's Value), so that
    the loss is judged apart from the student's softmax."""
    root = _root(module)
    label = inputs["label"]
    student = _attempt(lambda: _data_and_grads(module, inputs["logits"], [1.0],
                                               lambda ls: module.nll(lecture_softmax(ls), label)), root)
    if student is NOT_IMPLEMENTED_VALUE:
        return {"loss": student, "dlogits": student}
    lecture = _attempt(lambda: _data_and_grads(module, inputs["logits"], [1.0],
                                               lambda ls: -lecture_softmax(ls)[label].log()), root)
    out = _split(student, "loss", "dlogits")
    if isinstance(student, dict):
        out["loss"] = student["data"][0]
    return {**out, "_lecture": lecture if isinstance(lecture, dict) else None}
