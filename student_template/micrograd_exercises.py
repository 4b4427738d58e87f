"""micrograd exercises: the exercise notebook at the end of the micrograd lecture (nn-zero-to-hero).

1. watch the micrograd video on YouTube; 2. come back and complete these exercises to level up :)

The names and the code are the notebook's. What the notebook computes once at (2, 3, 4) is a function
here, so that it can be checked at other points too: `gradf(a, b, c)`, `numerical_grad(f, a, b, c)` and
`numerical_grad2(f, a, b, c, h)`. Section 2's softmax and its loss (`-probs[3].log()`) are `softmax(logits)`
and `nll(probs, label)`. Check your work with `make check` (or `check()` in the notebook).
PyTorch is not available in this file: the engine is built from Python floats and `math`.
"""
import math
from math import cos, exp, log, sin  # noqa: F401  (the notebook's imports)


# -- section 1: derivatives ------------------------------------------------------------------------------

# here is a mathematical expression that takes 3 inputs and produces one output
def f(a, b, c):
    return -a**3 + sin(3*b) - 1.0/c + b**2.5 - a**0.5


# write the function gradf that returns the analytical gradient of f
# i.e. use your skills from calculus to take the derivative, then implement the formula
# if you do not calculus then feel free to ask wolframalpha, e.g.:
# https://www.wolframalpha.com/input?i=d%2Fda%28sin%283*a%29%29%29
# expected answer at (2, 3, 4): [-12.353553390593273, 10.25699027111255, 0.0625]
def gradf(a, b, c):
    # YOUR CODE HERE
    raise NotImplementedError()
    return [df_da, df_db, df_dc]  # [df/da, df/db, df/dc]


# now estimate the gradient numerically without any calculus, using
# the approximation we used in the video (the step h is yours to choose).
# you should not call the function gradf from the last cell: numerical_grad works for any f(a, b, c)
def numerical_grad(f, a, b, c):
    # YOUR CODE HERE
    raise NotImplementedError()
    return numerical_grad


# there is an alternative formula that provides a much better numerical
# approximation to the derivative of a function.
# learn about it here: https://en.wikipedia.org/wiki/Symmetric_derivative
# implement it, with the step h you are given. confirm that for the same step size h this version gives a
# better approximation.
def numerical_grad2(f, a, b, c, h):
    # YOUR CODE HERE
    raise NotImplementedError()
    return numerical_grad2


# -- section 2: support for softmax ----------------------------------------------------------------------

# Value class starter code, with many functions taken out
class Value:

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op
        self.label = label

    def __repr__(self):
        return f"Value(data={self.data})"

    def __add__(self, other):  # exactly as in the video
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += 1.0 * out.grad
        out._backward = _backward

        return out

    # ------
    # re-implement all the other functions needed for the exercises below
    # (softmax needs exp, sum() needs 0 + Value, c / d, and the loss needs log and -x; a - b, a * b and
    # a ** k are checked too)
    pass  # YOUR CODE HERE: __radd__, __mul__, __pow__, __truediv__, __neg__, __sub__, exp, log
    # ------

    def backward(self):  # exactly as in video
        topo = []
        visited = set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)
        build_topo(self)

        self.grad = 1.0
        for node in reversed(topo):
            node._backward()


# without referencing our code/video __too__ much, make this work
# this is the softmax function
# https://en.wikipedia.org/wiki/Softmax_function
def softmax(logits):
    # YOUR CODE HERE
    raise NotImplementedError()
    return out


# this is the negative log likelihood loss function, pervasive in classification
# (the notebook's `loss = -probs[3].log()`: dim 3 acts as the label for this input example)
def nll(probs, label):
    # YOUR CODE HERE
    raise NotImplementedError()
    return loss


if __name__ == "__main__":  # the notebook's OK / WRONG lines at its own point (not part of the notebook)
    def report(name, yours, ans):
        for dim in range(len(ans)):
            ok = 'OK' if abs(yours[dim] - ans[dim]) < 1e-5 else 'WRONG!'
            print(f"{name}: {ok} for dim {dim}: expected {ans[dim]}, yours returns {yours[dim]}")

    def softmax_section():
        logits = [Value(0.0), Value(3.0), Value(-2.0), Value(1.0)]
        probs = softmax(logits)
        loss = nll(probs, 3)  # dim 3 acts as the label for this input example
        loss.backward()
        print(loss.data)
        return [logit.grad for logit in logits]

    print(f(2, 3, 4))
    ans = [-12.353553390593273, 10.25699027111255, 0.0625]
    sections = [("gradf", lambda: gradf(2, 3, 4), ans), ("numerical_grad", lambda: numerical_grad(f, 2, 3, 4), ans),
                ("numerical_grad2", lambda: numerical_grad2(f, 2, 3, 4, 0.000001), ans),
                ("softmax + nll", softmax_section,
                 [0.041772570515350445, 0.8390245074625319, 0.005653302662216329, -0.8864503806400986])]
    for name, run, expected in sections:
        try:
            report(name, run(), expected)
        except (NotImplementedError, AttributeError, TypeError) as exc:  # the template's stubs, ops not there yet
            print(f"{name}: not done yet ({type(exc).__name__}: {exc})" if str(exc) else f"{name}: not done yet")
    print("then run `make check` for the full check, at other points too")
