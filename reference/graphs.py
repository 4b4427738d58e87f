"""Backpropagation on computational graphs (Stanford CS231n, lecture 4).

Each gate is a small module like a framework layer: `forward` computes its output and caches what
the backward pass will need; `backward(dout)` takes the gradient of the final output with respect to
the gate's output (the *upstream* gradient) and returns the gradients with respect to its inputs:
local gradient times upstream gradient, the chain rule.

The patterns to see:
- add distributes: both inputs get `dout` unchanged;
- mul switches: each input gets the *other* input times `dout`;
- max routes: the input that was larger gets all of `dout`, the other gets 0;
- sigmoid: with s = sigmoid(x), ds/dx = (1 - s) * s, computed from the cached output.

A graph is run forward in topological order and backward in reverse order; where a value fans out
to several gates, the gradients coming back along the branches add.

Run `make check` to grade this file against PyTorch autograd.
"""
import math

import torch


class AddGate:
    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        """Return (dx, dy)."""
        ### BEGIN SOLUTION
        return dout, dout
        ### END SOLUTION


class MultiplyGate:
    def forward(self, x, y):
        self.x, self.y = x, y  # each input's gradient needs the other input
        return x * y

    def backward(self, dout):
        """Return (dx, dy)."""
        ### BEGIN SOLUTION
        dx = self.y * dout
        dy = self.x * dout
        return dx, dy
        ### END SOLUTION


class MaxGate:
    def forward(self, x, y):
        self.x, self.y = x, y  # which input won decides where the gradient goes
        return max(x, y)

    def backward(self, dout):
        """Return (dx, dy). On a tie (x == y) route all of dout to ONE input (either one)."""
        ### BEGIN SOLUTION
        if self.x >= self.y:
            return dout, 0.0
        return 0.0, dout
        ### END SOLUTION


class SigmoidGate:
    def forward(self, x):
        self.s = 1.0 / (1.0 + math.exp(-x))  # the local gradient is a function of the output
        return self.s

    def backward(self, dout):
        """Return dx."""
        ### BEGIN SOLUTION
        return (1.0 - self.s) * self.s * dout
        ### END SOLUTION


def simple_graph(x, y, z):
    """f = (x + y) * z. Return (f, (dx, dy, dz)). At x, y, z = -2, 5, -4: f = -12, (-4, -4, 3)."""
    add, mul = AddGate(), MultiplyGate()
    q = add.forward(x, y)
    f = mul.forward(q, z)
    ### BEGIN SOLUTION
    dq, dz = mul.backward(1.0)  # df/df = 1 starts the backward pass
    dx, dy = add.backward(dq)
    ### END SOLUTION
    return f, (dx, dy, dz)


def sigmoid_neuron(w, x):
    """f = sigmoid(w0*x0 + w1*x1 + w2), w = [w0, w1, w2], x = [x0, x1]. Return (f, (dw, dx)) with dw a
    list of 3 gradients and dx a list of 2. At w = [2, -3, -3], x = [-1, -2]: f = 0.73,
    dw = [-0.20, -0.39, 0.20], dx = [0.39, -0.59]."""
    mul0, mul1, add0, add1, sig = MultiplyGate(), MultiplyGate(), AddGate(), AddGate(), SigmoidGate()
    a = mul0.forward(w[0], x[0])
    b = mul1.forward(w[1], x[1])
    dot = add0.forward(a, b)
    z = add1.forward(dot, w[2])
    f = sig.forward(z)
    ### BEGIN SOLUTION
    dz = sig.backward(1.0)
    ddot, dw2 = add1.backward(dz)
    da, db = add0.backward(ddot)
    dw0, dx0 = mul0.backward(da)
    dw1, dx1 = mul1.backward(db)
    ### END SOLUTION
    return f, ([dw0, dw1, dw2], [dx0, dx1])


def l2_of_matvec(W, x):
    """f = ||W x||^2 for W of shape (m, n), x of shape (n,). Return (f, (dW, dx)).

    q = W x fans out: f = sum_i q_i * q_i uses each q_i twice, so the two branches add. A gradient
    always has the shape of its variable: dW is (m, n) like W, dx is (n,) like x (the grader checks).
    """
    q = W @ x
    f = (q * q).sum()
    ### BEGIN SOLUTION
    dq = 2.0 * q                  # one q from each branch of q * q
    dW = torch.outer(dq, x)       # dW[i, j] = dq[i] * x[j]
    dx = W.T @ dq                 # dx[j] = sum_i W[i, j] * dq[i]
    ### END SOLUTION
    return f, (dW, dx)


if __name__ == "__main__":
    # `python graphs.py`: check your gradients numerically, the way CS231n does (centred differences;
    # a relative error below ~1e-7 means right, above ~1e-2 means wrong). `make check` grades them.
    # One line per function: a stub says so, an exception is one FAILED line (its type, message and line).
    import traceback

    from autograder import gradcheck

    def report(name, check):
        try:
            print(f"{name:<15}", check())
        except NotImplementedError:
            print(f"{name:<15} not implemented yet: fill in {name}{'.backward' if name.endswith('Gate') else ''}")
        except Exception as exc:  # noqa: one line per function, the others still run
            if type(exc).__name__ == "GradcheckError":  # what gradcheck refuses in your answer (a shape...)
                print(f"{name:<15} FAILED: {exc}")
                return
            # where in this file (or notebook cell) it raised: your line, not the library's
            here = globals().get("__file__")
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if (f.filename == here if here else "site-packages" not in f.filename
                          and "autograder" not in f.filename)]
            at = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
            print(f"{name:<15} FAILED: {type(exc).__name__}: {exc}{at}")

    def gate_check(gate, *inputs):
        gate.forward(*inputs)
        grads = gate.backward(1.0)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        return gradcheck(lambda *a: gate.forward(*a), *inputs, analytic=grads)

    report("AddGate", lambda: gate_check(AddGate(), 1.5, -2.0))
    report("MultiplyGate", lambda: gate_check(MultiplyGate(), 1.5, -2.0))
    report("MaxGate", lambda: gate_check(MaxGate(), 1.5, -2.0))
    report("SigmoidGate", lambda: gate_check(SigmoidGate(), 0.7))
    report("simple_graph", lambda: gradcheck(lambda x, y, z: simple_graph(x, y, z)[0], -2.0, 5.0, -4.0,
                                             analytic=list(simple_graph(-2.0, 5.0, -4.0)[1])))
    w, x = [2.0, -3.0, -3.0], [-1.0, -2.0]
    report("sigmoid_neuron", lambda: gradcheck(lambda w, x: sigmoid_neuron(w, x)[0], w, x,
                                               analytic=list(sigmoid_neuron(w, x)[1])))
    W, x = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    report("l2_of_matvec", lambda: gradcheck(lambda W, x: l2_of_matvec(W, x)[0], W, x,
                                             analytic=list(l2_of_matvec(W, x)[1])))
