"""autograder.core.gradcheck: accepts correct gradients of every kind of input, rejects wrong ones and says where."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from autograder.core.gradcheck import GradcheckError, gradcheck, numerical_gradient, rel_error


class Value:
    """A minimal micrograd Value (the scalar engine gradcheck must drive through .data/.grad/.backward)."""

    def __init__(self, data, _children=()):
        self.data, self.grad = data, 0.0
        self._backward, self._prev = (lambda: None), set(_children)

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,))

        def _backward():
            self.grad += (1 - t ** 2) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, seen = [], set()

        def build(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    build(child)
                topo.append(v)
        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


class AssignValue(Value):
    """The classic engine bug: `=` instead of `+=` in mul's backward (wrong where a value is used twice)."""

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = AssignValue(self.data * other.data, (self, other))

        def _backward():
            self.grad = other.data * out.grad
            other.grad = self.data * out.grad
        out._backward = _backward
        return out


def l2_of_matvec(W, x):
    return ((W @ x) ** 2).sum()


@pytest.fixture
def Wx():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)


# -- (a) plain functions of floats ----------------------------------------------------------------------------

def test_floats_correct_gradient_passes():
    # the lecture's f = (x + y) z at (-2, 5, -4): df/dx = df/dy = z = -4, df/dz = x + y = 3
    result = gradcheck(lambda x, y, z: (x + y) * z, -2.0, 5.0, -4.0, analytic=[-4.0, -4.0, 3.0])
    assert result.ok and result.max_rel_error < 1e-9
    assert [float(n) for n in result.numeric] == pytest.approx([-4.0, -4.0, 3.0], rel=1e-9)


def test_floats_wrong_gradient_is_named():
    result = gradcheck(lambda x, y, z: (x + y) * z, -2.0, 5.0, -4.0, analytic=[-4.0, 4.0, 3.0])
    assert not result.ok
    assert result.worst_input == "input 1 (y)" and result.worst_index == ()
    assert result.max_rel_error == pytest.approx(1.0)
    assert "FAILED" in repr(result) or "ok=False" in repr(result)
    assert "input 1 (y)" in str(result) and "analytic 4" in str(result)


def test_list_of_floats_input():
    f = lambda w: 1 / (1 + math.exp(-(w[0] * -1 + w[1] * -2 + w[2])))  # noqa: E731 the lecture's neuron
    s = f([2.0, -3.0, -3.0])
    analytic = [np.array([-1.0, -2.0, 1.0]) * s * (1 - s)]
    assert gradcheck(f, [2.0, -3.0, -3.0], analytic=analytic).ok


# -- (b) tensors --------------------------------------------------------------------------------------------

def test_tensor_autograd_and_hand_gradients_pass(Wx):
    W, x = Wx
    assert gradcheck(l2_of_matvec, W, x).ok  # analytic from autograd
    q = W @ x
    result = gradcheck(l2_of_matvec, W, x, analytic=[2 * torch.outer(q, x), 2 * W.T @ q])
    assert result.ok and result.max_rel_error < 1e-8, result


def test_planted_error_is_found_and_its_index_named(Wx):
    W, x = Wx
    q = W @ x
    dW = 2 * torch.outer(q, x)
    dW[2, 1] *= 1.01  # a 1% error in one element
    result = gradcheck(l2_of_matvec, W, x, analytic=[dW, 2 * W.T @ q])
    assert not result.ok and result.n_failed == 1
    assert (result.worst_input, result.worst_index) == ("input 0 (W)", (2, 1))
    assert result.rel_errors[0][2, 1] == pytest.approx(0.01 / 2.01, rel=1e-3)
    assert "index (2, 1)" in str(result)


def test_transposed_gradient_fails_everywhere_it_differs(Wx):
    W = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = Wx[1]
    q = W @ x
    result = gradcheck(l2_of_matvec, W, x, analytic=[(2 * torch.outer(q, x)).T, 2 * W.T @ q])
    assert not result.ok and result.n_failed >= 10  # all off-diagonal elements


def test_float32_analytic_gets_float32_threshold(Wx):
    W, x = Wx
    q = W @ x
    grads = [2 * torch.outer(q, x).float(), (2 * W.T @ q).float()]
    result = gradcheck(l2_of_matvec, W.float(), x.float(), analytic=grads)
    assert result.ok and result.rtol == 1e-4
    grads[1][0] *= 1.001  # still caught at float32 precision
    assert not gradcheck(l2_of_matvec, W.float(), x.float(), analytic=grads).ok


def test_numpy_arrays_and_numerical_gradient():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    f = lambda x: float(np.sum(np.sin(x) * x))  # noqa: E731
    (numeric,) = numerical_gradient(f, x)
    assert np.allclose(numeric, np.cos(x) * x + np.sin(x), rtol=1e-9, atol=1e-12)
    assert gradcheck(f, x, analytic=[np.cos(x) * x + np.sin(x)]).ok
    assert rel_error(numeric, np.cos(x) * x + np.sin(x)) < 1e-8


def test_integer_inputs_pass_through():
    # the embedding lookup: C[idx] with integer indices, as in backprop ninja
    C = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    idx = torch.tensor([0, 3, 3, 1])
    result = gradcheck(lambda C, idx: (C[idx] ** 2).sum(), C, idx)
    assert result.ok and result.inputs == ["input 0 (C)"]


def test_sampled_elements_only(Wx):
    W, x = Wx
    result = gradcheck(l2_of_matvec, W, x, samples=3, seed=4)
    assert result.ok and result.n_checked == 3 + 3
    assert int(np.isnan(result.numeric[0]).sum()) == W.numel() - 3


# -- vector-Jacobian products -------------------------------------------------------------------------------

def test_vjp_with_autograd_and_by_hand(Wx):
    W, x = Wx
    upstream = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert gradcheck(lambda W, x: W @ x, W, x, upstream=upstream).ok
    good = [torch.outer(upstream, x), W.T @ upstream]
    assert gradcheck(lambda W, x: W @ x, W, x, upstream=upstream, analytic=good).ok
    bad = [torch.outer(upstream, x), W.T @ upstream.flip(0)]  # upstream misaligned for dx
    result = gradcheck(lambda W, x: W @ x, W, x, upstream=upstream, analytic=bad)
    assert not result.ok and result.worst_input == "input 1 (x)"


def test_vjp_of_a_list_of_floats():
    f = lambda a, b: [a * b, a + b]  # noqa: E731
    assert gradcheck(f, 2.0, 3.0, upstream=[1.0, 10.0], analytic=[3.0 + 10.0, 2.0 + 10.0]).ok
    assert not gradcheck(f, 2.0, 3.0, upstream=[1.0, 10.0], analytic=[3.0, 2.0]).ok


# -- (c) the scalar engine ------------------------------------------------------------------------------------

def test_values_backward_is_checked_and_inputs_restored():
    a, b = Value(0.3), Value(-1.2)
    result = gradcheck(lambda a, b: (a * b + a).tanh(), a, b)
    assert result.ok and result.max_rel_error < 1e-8
    assert (a.data, b.data) == (0.3, -1.2)  # perturbations undone
    t = math.tanh(0.3 * -1.2 + 0.3)
    assert a.grad == pytest.approx((1 - t ** 2) * (-1.2 + 1))


def test_values_list_input_and_vjp():
    w = [Value(1.0), Value(2.0), Value(-2.5)]
    assert gradcheck(lambda w: (w[0] * w[1] + w[2]).tanh(), w).ok
    a, b = Value(0.5), Value(-0.7)
    assert gradcheck(lambda a, b: [(a * b).tanh(), a + b, a * a], a, b, upstream=[1.0, -2.0, 0.5]).ok


def test_values_engine_bug_is_caught():
    # x * x: with `=` the second assignment overwrites the first, giving x instead of 2x
    result = gradcheck(lambda x: x * x, AssignValue(0.7))
    assert not result.ok and result.max_rel_error == pytest.approx(1 / 3)


# -- kinks --------------------------------------------------------------------------------------------------

def test_kink_exactly_at_the_point_is_reported_not_failed():
    # max on a tie: routing the gradient to either input is a valid subgradient
    result = gradcheck(lambda a, b: max(a, b), 2.0, 2.0, analytic=[1.0, 0.0])
    assert result.ok and len(result.kinks) == 2 and "kink" in str(result)
    # but a gradient no one-sided derivative explains still fails
    assert not gradcheck(lambda a, b: max(a, b), 2.0, 2.0, analytic=[3.0, 0.0]).ok


def test_kink_near_the_point_is_not_probed_across():
    # relu at 3e-6: the step 1e-5 straddles 0; the refined step does not, and the true gradient 1 passes
    x = torch.tensor([3e-6, -4e-6, 0.5], dtype=torch.float64)
    result = gradcheck(lambda x: torch.relu(x).sum(), x, analytic=[torch.tensor([1.0, 0.0, 1.0])])
    assert result.ok and not result.kinks
    assert not gradcheck(lambda x: torch.relu(x).sum(), x, analytic=[torch.tensor([0.0, 0.0, 1.0])]).ok


def test_near_zero_gradient_elements_are_not_noise_failures():
    x = torch.tensor([0.0, math.pi, 1e-9, 2.0], dtype=torch.float64)
    result = gradcheck(lambda x: (torch.cos(x) * 1e3).sum(), x)
    assert result.ok, result


# -- misuse ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: gradcheck(3, 1.0), "function to check"),
    (lambda: gradcheck(lambda x: x), "no inputs"),
    (lambda: gradcheck(lambda x: x, 3), "write 3.0"),
    (lambda: gradcheck(lambda x: x, 1.0), "analytic="),
    (lambda: gradcheck(lambda x: [x, x], 1.0, analytic=[1.0]), "upstream="),
    (lambda: gradcheck(lambda x: x * 2, torch.ones(2, 2), upstream=torch.ones(3)), "upstream has shape"),
    (lambda: gradcheck(lambda x: x.sum(), torch.ones(2, 2), analytic=[torch.ones(4)]), "variable's shape"),
    (lambda: gradcheck(lambda x, y: x * y, 1.0, 2.0, analytic=[1.0]), "one gradient per input"),
    (lambda: gradcheck(lambda x: float(x.detach().sum()), torch.ones(2)), "does not depend"),
    (lambda: gradcheck(lambda x: x, 1.0, analytic=[1.0], eps=0), "eps must be"),
    (lambda: gradcheck(lambda x: math.inf * x, 1.0, analytic=[1.0]), "not finite"),
    (lambda: gradcheck(lambda x: "no", 1.0, analytic=[1.0]), "must return"),
    (lambda: gradcheck(lambda v: v.data, Value(1.0)), "no .backward()"),
    (lambda: gradcheck(lambda x: x.sum(), torch.ones(0, dtype=torch.float64)), "nothing was checked"),
    (lambda: gradcheck(lambda x, y: x * y, 1.0, 2.0, analytic=[None, None]), "nothing was checked"),
])
def test_misuse_raises_a_clear_error(call, message):
    with pytest.raises(GradcheckError, match=re.escape(message)):
        call()


def test_atol_for_a_gradient_that_is_mathematically_zero():
    # d loss / d m of cross-entropy on (logits - m) is 0 (softmax is shift-invariant); float32 autograd
    # returns rounding noise of terms of size ~1/n, which is relative to those terms, not to itself
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(8, 5, generator=g) * 3
    target = torch.randint(0, 5, (8,), generator=g)
    m = logits.max(1, keepdim=True).values.clone().requires_grad_()
    torch.nn.functional.cross_entropy(logits - m, target).backward()
    assert m.grad.abs().max() > 0  # noise, not 0

    def loss(m):
        z = logits.double().numpy() - m
        z = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-z[np.arange(8), target.numpy()].mean())
    noise = 64 * float(np.finfo(np.float32).eps) / 8
    assert gradcheck(loss, m.detach().double().numpy(), analytic=[m.grad], atol=noise).ok
    planted = m.grad.clone()
    planted[3] += 0.01 / 8  # a real gradient on top of the noise is still caught
    assert not gradcheck(loss, m.detach().double().numpy(), analytic=[planted], atol=noise).ok


def test_autograder_gradcheck_is_callable_after_the_module_is_imported():
    import autograder
    import autograder.core.gradcheck  # noqa: F401  binds the package attribute to the module
    assert autograder.core.gradcheck(lambda x: x * x, 3.0, analytic=[6.0]).ok


def test_none_skips_an_input():
    result = gradcheck(lambda x, y, z: (x + y) * z, -2.0, 5.0, -4.0, analytic=[None, -4.0, 3.0])
    assert result.ok and result.n_checked == 2 and np.isnan(result.numeric[0])
