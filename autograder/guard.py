"""Guards installed in the student's process before the student's code is imported: modules it may not
import, and tripwires on autograd (the gradients are to be computed by hand). Child-side: imports nothing of
the grader."""
from __future__ import annotations

import sys

_autograd_calls: list[str] = []


class AutogradUsed(BaseException):
    """Raised in the student's process when it reaches for autograd; BaseException so that a
    student's `except Exception` does not swallow it."""


class BlockedImport(ImportError):
    pass


class _ImportBlocker:
    """A meta path finder that refuses the named top-level packages."""

    def __init__(self, names, why):
        self.names, self.why = set(names), why

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise BlockedImport(f"import {fullname} is not allowed here: {self.why}")
        return None


def block_imports(names, why):
    for mod in list(sys.modules):
        if mod.split(".")[0] in names:
            del sys.modules[mod]
    sys.meta_path.insert(0, _ImportBlocker(names, why))


def trip_autograd():
    """Replace the entry points of autograd with tripwires (the student must backprop by hand)."""
    import torch

    def tripwire(what):
        def f(*args, **kwargs):
            _autograd_calls.append(what)
            raise AutogradUsed(f"{what} was called: this exercise must compute gradients by hand")
        return f

    torch.Tensor.backward = tripwire("Tensor.backward()")
    torch.autograd.backward = tripwire("torch.autograd.backward()")
    torch.autograd.grad = tripwire("torch.autograd.grad()")
    for name in ("grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"):
        if name != "vmap" and hasattr(torch.func, name):
            setattr(torch.func, name, tripwire(f"torch.func.{name}()"))
    torch.autograd.functional.vjp = tripwire("torch.autograd.functional.vjp()")
    torch.autograd.functional.jacobian = tripwire("torch.autograd.functional.jacobian()")
    torch.set_grad_enabled(False)
    torch.enable_grad = tripwire("torch.enable_grad()")  # noqa: the student may not switch it back on
    torch.set_grad_enabled = tripwire("torch.set_grad_enabled()")
