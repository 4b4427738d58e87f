"""The static half of the autograd guard: autograd reached for in the submission's source (the
worker's tripwires, `guard.py`, are the dynamic half). Runs in the grader, on the student's text."""
from __future__ import annotations

import ast
import functools
from pathlib import Path


# Attributes that reach for autograd. Not `.grad`: reading a gradient is not computing one.
AUTOGRAD_NAMES = frozenset({"backward", "autograd", "func", "functorch", "requires_grad", "requires_grad_",
                            "enable_grad", "set_grad_enabled", "vjp", "jacrev", "jacobian"})


def autograd_in_source(path: Path, function: str) -> list[str]:
    """Autograd reached for in `function`'s body (static check; the worker's tripwires are the dynamic one)."""
    try:
        source = path.read_text(errors="replace")
    except OSError:
        return []
    return list(_autograd_in_source(source, function))


@functools.lru_cache(maxsize=64)  # a submission's file is scanned once, not once per exercise
def _autograd_in_source(source: str, function: str) -> tuple[str, ...]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    found = []
    own_classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            own_objects = _instances_of(node, own_classes)
            for sub in ast.walk(node):
                if isinstance(sub, ast.Attribute) and sub.attr in AUTOGRAD_NAMES \
                        and not (isinstance(sub.value, ast.Name) and sub.value.id in own_objects):
                    found.append(f"line {sub.lineno}: .{sub.attr}")
    return tuple(found)


def _instances_of(function: ast.AST, classes: set[str]) -> set[str]:
    """Local names bound to instances of the file's own classes (`add, mul = AddGate(), MultiplyGate()`):
    their `.backward()` is the student's own backward pass (a gate, a layer), not autograd."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and \
                    isinstance(node.value, ast.Tuple) and len(target.elts) == len(node.value.elts) \
                    else [(target, node.value)]
                for name, value in pairs:
                    if isinstance(name, ast.Name) and isinstance(value, ast.Call) and \
                            isinstance(value.func, ast.Name) and value.func.id in classes:
                        names.add(name.id)
    return names
