"""Helpers for the PyTorch truths the grader computes.

`out.backward(upstream)` and `autograd.grad(out, x, grad_outputs=upstream)` make torch import
`torch.fx.experimental.symbolic_shapes` (and sympy) the first time: half a second of every `make check`.
The same vector-Jacobian product through a scalar, `(out * upstream).sum()`, skips that import and is
bitwise the same gradient: the backward of the sum is 1 and of the product `upstream * 1`.
"""
from __future__ import annotations

import torch


def backward(out: torch.Tensor, upstream: torch.Tensor) -> None:
    """`out.backward(upstream)`."""
    (out * upstream).sum().backward()


def vjp(out: torch.Tensor, inputs, upstream: torch.Tensor, allow_unused: bool = False):
    """`torch.autograd.grad(out, inputs, grad_outputs=upstream)`."""
    return torch.autograd.grad((out * upstream).sum(), inputs, allow_unused=allow_unused)
