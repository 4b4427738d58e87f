"""The static half of the autograd guard: autograd reached for in the submission's source (the worker's
guard, `guard.py`, is the dynamic half). Runs in the grader, on the student's text; never imports it.

The whole file is read, and the local modules it imports. A finding counts against an exercise when it is
in code that exercise can run: its entry point and everything in the file it refers to (functions,
classes and methods, by name, attribute or string), module-level code (it runs at import), and the local
modules imported. The `if __name__ == "__main__":` block does not run under the grader and is skipped
(the templates compare with autograd there).

What is flagged, directly or as a string built to reach it (`getattr(torch, "auto" + "grad")`,
`importlib.import_module(...)`, `__import__`): autograd and its engine (`torch.autograd`, `.grad_fn`,
`.next_functions`, `_execution_engine`, `_ImperativeEngine`, grad mode switched on), `torch.func` /
functorch / forward-mode AD, PyTorch's backward kernels (`torch.ops.aten.tanh_backward`,
`torch._log_softmax_backward_data`, any `*_backward` the file does not define itself), the grader's
dispatch mode switched off, libraries that differentiate (sympy...), processes, ctypes, and
`exec`/`eval`/`__import__` of strings the scan cannot read.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

# Attribute or imported names that reach autograd whatever they are called on.
AUTOGRAD_NAMES = {
    "autograd": "autograd", "functorch": "functorch", "_functorch": "torch.func", "grad_and_value": "torch.func",
    "grad_fn": "an autograd graph node", "next_functions": "autograd graph nodes",
    "enable_grad": "grad mode switched on", "register_hook": "autograd hooks",
    "vjp": "autograd (vjp)", "jvp": "autograd (jvp)", "jacrev": "autograd (jacrev)", "jacfwd": "autograd (jacfwd)",
    "jacobian": "autograd (jacobian)", "hessian": "autograd (hessian)",
    **dict.fromkeys(("_execution_engine", "_ImperativeEngine", "_EngineBase", "run_backward", "_engine_run_backward"),
                    "the autograd engine"),
    **dict.fromkeys(("forward_ad", "make_dual", "unpack_dual", "dual_level", "_fw_grad", "_make_dual",
                     "_set_fwd_grad_enabled"), "forward-mode autograd"),
    **dict.fromkeys(("_pop_torch_dispatch_stack", "_unset_dispatch_mode", "_set_dispatch_mode", "_DisableTorchDispatch",
                     "_ExcludeDispatchKeyGuard", "_DisablePythonDispatcher", "_python_dispatch", "_pop_mode",
                     "_disable_current_modes", "_push_on_torch_dispatch_stack", "_get_dispatch_stack_at",
                     "saved_tensors_hooks", "disable_saved_tensors_hooks", "_saved_tensors_hooks_disable",
                     "save_on_cpu", "_pop_saved_tensors_default_hooks", "_push_saved_tensors_default_hooks", "_destroy",
                     "_registration_handles"), "the grader's guard switched off"),
    **dict.fromkeys(("_autograd_calls", "after_case", "trip_autograd", "guard", "_sticky", "_kernels", "__closure__",
                     "cell_contents"), "the grader's guard tampered with"),
    # what the guard refuses at run time: processes, native code, gc walks (threads start guarded: not a route)
    **dict.fromkeys(("get_objects", "get_referrers", "get_referents"), "gc object walks"),
    **dict.fromkeys(("fork", "forkpty", "posix_spawn", "posix_spawnp"), "a new process"),
}
# Names that are autograd only on torch (`torch.func`, `torch.set_grad_enabled(x)` unless x is False...).
TORCH_ONLY = {"func": "torch.func", "grad": "autograd (grad)", "library": "torch.library (kernels replaced)"}
# Modules that are a route wherever they are imported.
ROUTE_MODULES = {
    "multiprocessing": "a new process",
    "subprocess": "a new process", "ctypes": "native code (ctypes)", "cffi": "native code (cffi)",
    "sympy": "a library that differentiates", "mpmath": "a library that differentiates",
    "functorch": "functorch", "jax": "a library that differentiates", "jaxlib": "a library that differentiates",
    "autograd": "a library that differentiates", "tensorflow": "a library that differentiates",
    "keras": "a library that differentiates", "numdifftools": "a library that differentiates",
    "casadi": "a library that differentiates", "theano": "a library that differentiates",
    "pytensor": "a library that differentiates", "aesara": "a library that differentiates",
    "tangent": "a library that differentiates", "mxnet": "a library that differentiates",
    "paddle": "a library that differentiates", "chainer": "a library that differentiates",
    "mygrad": "a library that differentiates", "tinygrad": "a library that differentiates",
    "findiff": "a library that differentiates", "symengine": "a library that differentiates",
}
OS_ROUTES = {"system", "popen", "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
             "spawnv", "spawnve", "spawnl", "spawnle"}
DYNAMIC_CALLS = {"getattr", "setattr", "hasattr", "delattr", "__import__", "import_module", "eval", "exec",
                 "compile", "attrgetter", "methodcaller", "__getattribute__", "__getattr__", "reload", "find_spec"}
CODE_FROM_TEXT = {"eval", "exec", "compile", "__import__", "import_module"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def autograd_in_source(path: Path, function: str) -> list[str]:
    """Autograd reached for in the code exercise `function` can run (see the module's docstring):
    ["line 12: torch.ops.aten.tanh_backward (a PyTorch backward kernel)", ...]."""
    try:
        source = path.read_text(errors="replace")
    except OSError:
        return []
    return list(_scan_file(source, function, str(path.parent), path.name))


@functools.lru_cache(maxsize=64)  # a submission's file is scanned once per exercise, not once per case
def _scan_file(source: str, function: str, folder: str, name: str, seen: tuple[str, ...] = ()) -> tuple[str, ...]:
    try:
        tree = ast.parse(source)
        scan = _Scan(tree, name)
        roots = scan.reachable(function) if function else None
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # it will not import either: that costs it
        return ()
    found = [finding for where, finding in scan.findings if roots is None or where is None or where in roots]
    for module in sorted(scan.local_imports):  # the local modules it imports run too: all of their code
        for candidate in (Path(folder) / f"{module}.py", Path(folder) / module / "__init__.py"):
            if candidate.is_file() and str(candidate) not in seen:
                try:
                    text = candidate.read_text(errors="replace")
                except OSError:
                    continue
                found += [f"{candidate.relative_to(folder)}, {f}" for f in
                          _scan_file(text, "", str(candidate.parent), candidate.name, seen + (str(candidate),))]
    return tuple(dict.fromkeys(found))


def _fold(node: ast.AST, consts: dict) -> str | None:
    """The value of a string expression built from constants ("auto" + "grad", f"{a}{b}", "".join([...]),
    "dargotua"[::-1], chr(97)...), else None. `consts` maps names assigned a string once."""
    try:
        return _fold_node(node, consts)
    except RecursionError:  # a chain of thousands of `+`: too deep to read, and no name is that long
        return None


def _fold_node(node: ast.AST, consts: dict) -> str | None:
    _fold = _fold_node  # noqa: N806  recursion goes through the unguarded function
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _fold(node.left, consts), _fold(node.right, consts)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            part = _fold(value.value if isinstance(value, ast.FormattedValue) else value, consts)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        base = _fold(node.value, consts)
        bounds = [getattr(b, "value", None) if b is not None else None
                  for b in (node.slice.lower, node.slice.upper, node.slice.step)]
        if base is not None and all(b is None or isinstance(b, int) for b in bounds):
            return base[slice(*bounds)]
        return None
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "join" and len(node.args) == 1:
            sep = _fold(func.value, consts)
            items = node.args[0]
            if isinstance(items, ast.Call) and getattr(items.func, "id", "") in ("reversed", "list", "tuple") \
                    and items.args:
                inner = _fold(items.args[0], consts)
                if sep is not None and inner is not None:
                    return sep.join(reversed(inner) if items.func.id == "reversed" else inner)
            if sep is not None and isinstance(items, (ast.List, ast.Tuple)):
                parts = [_fold(e, consts) for e in items.elts]
                if all(p is not None for p in parts):
                    return sep.join(parts)
            if sep is not None:
                inner = _fold(items, consts)
                return sep.join(inner) if inner is not None else None
        if isinstance(func, ast.Name) and func.id == "chr" and len(node.args) == 1 and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, int):
            try:
                return chr(node.args[0].value)
            except (ValueError, OverflowError):
                return None
        if isinstance(func, ast.Attribute) and func.attr in ("lower", "upper", "strip", "replace", "format") :
            base = _fold(func.value, consts)
            args = [_fold(a, consts) for a in node.args]
            if base is not None and all(a is not None for a in args):
                try:
                    return getattr(base, func.attr)(*args)
                except (TypeError, ValueError, IndexError, KeyError):
                    return None
    return None


class _Scan:
    """One file: its findings, each with the top-level definition it is in (None: module level), and
    what refers to what, for reachability."""

    def __init__(self, tree: ast.Module, name: str):
        self.findings: list[tuple[str | None, str]] = []
        self.local_imports: set[str] = set()
        self.refs: dict[str | None, set[str]] = {}
        body = [stmt for stmt in tree.body if not _is_main_guard(stmt)]
        self.defined = {n.name for stmt in body for n in ast.walk(stmt)
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.own_backward = "backward" in self.defined
        self.consts = _string_constants(tree)
        self.call_of = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        self.torch_aliases = {"torch"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                self.torch_aliases |= {a.asname for a in node.names if a.name == "torch" and a.asname}
        # names bound to something of torch's: `import torch as t`, `from torch import ops`, `aten = torch.ops.aten`
        self.torch_names = set(self.torch_aliases)
        for _ in range(3):
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                    self.torch_names |= {a.asname or a.name for a in node.names}
                elif isinstance(node, ast.Import):
                    self.torch_names |= {a.asname for a in node.names if a.name.startswith("torch.") and a.asname}
                elif isinstance(node, ast.Assign) and self.from_torch(node.value):
                    self.torch_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        self.top = {}   # name -> top-level definition node
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.top[stmt.name] = stmt
                self._scan(stmt, stmt.name)
            else:
                self._scan(stmt, None)
        self.methods = {}  # method name -> top-level class names that define it
        for top_name, node in self.top.items():
            if isinstance(node, ast.ClassDef):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.methods.setdefault(sub.name, set()).add(top_name)

    def from_torch(self, node: ast.AST) -> bool:
        """Is `node` (an attribute chain, a call's result...) rooted in torch?"""
        while True:
            if isinstance(node, ast.Name):
                return node.id in getattr(self, "torch_names", self.torch_aliases)
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("__import__", "import_module") and node.args:
                    return (_fold(node.args[0], self.consts) or "").split(".")[0] == "torch"
                if name == "getattr" and node.args:
                    node = node.args[0]
                    continue
                node = node.func
            elif isinstance(node, ast.Subscript) and _is_namespace(node.value):  # sys.modules["torch"]
                return (_fold(node.slice, self.consts) or "").split(".")[0] == "torch"
            elif isinstance(node, (ast.Attribute, ast.Subscript)):
                node = node.value
            else:
                return False

    def reachable(self, function: str) -> set[str]:
        """Top-level definitions `function` ("f", "Cls" or "Cls.method") can run, by the names it uses; what
        module-level code uses runs for every exercise."""
        todo, seen = [function.split(".")[0], *self.refs.get(None, ())], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for ref in self.refs.get(name, ()):
                todo += [ref] if ref in self.top else []
                todo += list(self.methods.get(ref, ()))
        return seen & set(self.top) | {function.split(".")[0]}

    def _flag(self, where, node: ast.AST, what: str, why: str) -> None:
        self.findings.append((where, f"line {getattr(node, 'lineno', '?')}: {_short(what)} ({why})"))

    def _check_name(self, where, node, name: str, full: str, call: ast.Call | None, on_torch: bool) -> None:
        if name in self.defined and name != "backward" and not (isinstance(node, ast.Attribute) and
                                                                  self.from_torch(node.value)):
            return  # the student's own `vjp` or `jacobian` method, called on their own object
        if name in AUTOGRAD_NAMES:
            self._flag(where, node, full, AUTOGRAD_NAMES[name])
        elif name in TORCH_ONLY and on_torch:
            self._flag(where, node, full, TORCH_ONLY[name])
        elif name in GRAD_MODE_CALLS:
            if not _grad_mode_off(call, name):
                self._flag(where, node, full, "grad mode switched on")
        elif name == "backward" and not self.own_backward:
            self._flag(where, node, full, "autograd")
        elif ("backward" in name or name.endswith("_jvp")) and name != "backward" and \
                (name not in self.defined or (isinstance(node, ast.Attribute) and self.from_torch(node.value))):
            self._flag(where, node, full, "a PyTorch backward kernel")

    def _check_string(self, where, node, text: str, dynamic: bool, on_torch: bool = False) -> None:
        """A string that names a route: exactly an identifier or a dotted path (prose is not flagged), or
        any string given to getattr/import/eval (`on_torch`: looked up on something of torch's)."""
        text = text.strip()
        if not text or (" " in text and not dynamic) or len(text) > 200:
            return
        for segment in _IDENT.findall(text):
            if segment in AUTOGRAD_NAMES or segment in ROUTE_MODULES or (segment in TORCH_ONLY and dynamic) \
                    or ("backward" in segment and (segment not in self.defined or on_torch) and segment != "backward") \
                    or segment in ("set_grad_enabled", "_set_grad_enabled") \
                    or (segment == "backward" and dynamic and not self.own_backward):
                if not dynamic and segment in self.defined:
                    continue
                if segment in TORCH_ONLY and not on_torch and segment not in AUTOGRAD_NAMES:
                    continue
                self._flag(where, node, repr(text), "reached through a string")
                return

    def _scan(self, root: ast.AST, where: str | None) -> None:
        refs = self.refs.setdefault(where, set())
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                refs.add(node.id)
                if node.id in GRAD_MODE_CALLS and node.id not in self.defined:  # `from torch import set_grad_enabled`
                    self._check_name(where, node, node.id, _unparse(self.call_of.get(id(node), node)),
                                     self.call_of.get(id(node)), False)
            elif isinstance(node, ast.Attribute):
                refs.add(node.attr)
                call = self.call_of.get(id(node))
                on_torch = isinstance(node.value, ast.Name) and node.value.id in self.torch_aliases
                self._check_name(where, node, node.attr, _unparse(call or node), call, on_torch)
                if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in OS_ROUTES:
                    self._flag(where, node, _unparse(node), "a new process")
            elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name in DYNAMIC_CALLS:
                    texts = [_fold(a, self.consts) for a in node.args[:2]]
                    on_torch = name in ("__import__", "import_module", "reload") or \
                        bool(node.args) and self.from_torch(node.args[0])
                    for arg, text in zip(node.args[:2], texts):
                        if text is not None:
                            self._check_string(where, node, text, dynamic=True, on_torch=on_torch)
                            refs.update(_IDENT.findall(text))
                        elif name in CODE_FROM_TEXT and arg is node.args[0]:
                            self._flag(where, node, _unparse(node), "code built from a string the scan cannot read")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self._check_import(where, node)
            elif isinstance(node, ast.Subscript):
                text = _fold(node.slice, self.consts)
                if text is not None and _is_namespace(node.value):
                    self._check_string(where, node, text, dynamic=True)
                    refs.update(_IDENT.findall(text))
            if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)) and not _is_docstring(node):
                text = _fold(node, self.consts)
                if text is not None:
                    refs.update(_IDENT.findall(text))  # a name in a string may be looked up by it
                    if not isinstance(node, ast.Constant) or _IDENT.fullmatch(text.replace(".", "_") or "-"):
                        self._check_string(where, node, text, dynamic=False)

    def _check_import(self, where, node) -> None:
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                self.local_imports.add(module.split(".")[0] or node.names[0].name)
            else:
                self.local_imports.add(module.split(".")[0])
            paths = [f"{module}.{a.name}" if module else a.name for a in node.names]
        else:
            paths = [a.name for a in node.names]
            self.local_imports |= {a.name.split(".")[0] for a in node.names}
        for path in paths:
            segments = path.split(".")
            for i, segment in enumerate(segments):
                on_torch = i > 0 and segments[i - 1] == "torch"
                if (i == 0 and segment in ROUTE_MODULES) or segment in AUTOGRAD_NAMES or \
                        (segment in TORCH_ONLY and on_torch) or \
                        ("backward" in segment and segment not in self.defined and segment != "backward"):
                    why = ROUTE_MODULES.get(segment) if i == 0 and segment in ROUTE_MODULES else \
                        AUTOGRAD_NAMES.get(segment) or TORCH_ONLY.get(segment) or "a PyTorch backward kernel"
                    self._flag(where, node, f"import {path}", why)
                    return


# Not `requires_grad`/`requires_grad_()`/`retain_grad()`: harmless with grad mode off (the lecture sets them out of
# habit), and the guard refuses the graph they would lead to.
GRAD_MODE_CALLS = ("set_grad_enabled", "_set_grad_enabled", "inference_mode")


def _grad_mode_off(call: ast.Call | None, name: str) -> bool:
    """True for the calls that leave grad mode off: `set_grad_enabled(False)`, `inference_mode()` or
    `inference_mode(True)` (and `@torch.inference_mode`)."""
    if call is None:
        return name == "inference_mode"
    args = list(call.args) + [k.value for k in call.keywords if k.arg == "mode"]
    first = args[0] if args else None
    if name == "inference_mode":
        return first is None or (isinstance(first, ast.Constant) and first.value is not False)
    return isinstance(first, ast.Constant) and first.value is False


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = stmt.test if isinstance(stmt, ast.If) else None
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__" and \
        len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) and \
        isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__"


def _is_docstring(node: ast.AST) -> bool:  # marked by _string_constants
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and \
        getattr(node, "_statement", False)


def _is_namespace(node: ast.AST) -> bool:
    """`globals()[...]`, `vars(x)[...]`, `x.__dict__[...]`, `sys.modules[...]`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("globals", "vars", "locals"):
        return True
    return isinstance(node, ast.Attribute) and node.attr in ("__dict__", "modules")


def _string_constants(tree: ast.Module) -> dict:
    """Names assigned a foldable string (once), so that `name = "auto" + "grad"; getattr(torch, name)`
    is read; statements that are bare strings (docstrings) are marked and never flagged."""
    consts, counts = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            node.value._statement = True
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            counts[node.targets[0].id] = counts.get(node.targets[0].id, 0) + 1
    for _ in range(3):  # names built from names
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and counts.get(node.targets[0].id) == 1:
                value = _fold(node.value, consts)
                if value is not None:
                    consts[node.targets[0].id] = value
    return consts


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (Exception, RecursionError):  # noqa: a node ast cannot print is still a finding
        return type(node).__name__


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
