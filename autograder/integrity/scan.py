"""The integrity verdict: a static policy over the submission's files, in the grader (it never imports
them). The guard in the student's process (`guard.py`) is a second line; no verdict depends on it.

Every file the graded module can import is read: the module, its packages' `__init__.py`, and the local
modules it imports (found in its folder or at the submission's root), and any file that is not source
(`.pyc`, `.so`...) an import could load. A finding counts against an exercise when it is in code that
exercise can run: its entry point and everything in the file it refers to (functions, classes and methods,
by name, attribute or string), and what runs at import (module-level statements, class bodies,
decorators, default values; the local modules imported from there). The `if __name__ == "__main__":` block
does not run under the grader and is skipped (the templates compare with autograd there).

Each finding has a category (`integrity/labels.py`), and names the construct and its line:
- autograd (`AUTOGRAD`): autograd and its engine (`torch.autograd`, `.grad_fn`, `.backward()` on something
  the file does not define, grad mode switched on), `torch.func` / functorch / forward-mode AD, PyTorch's
  backward kernels (any `*_backward` the file does not define itself), libraries that differentiate, the
  guard's own names; directly or as a string built to reach them (`getattr(torch, "auto" + "grad")`);
- default-deny for what the scan cannot read (`UNREADABLE`): getattr/setattr/delattr (and `__getattribute__`,
  `attrgetter`...) with a name that is not a constant, a namespace (`globals()`, `vars()`, `__dict__`,
  `sys.modules`) indexed by one, these builtins passed around as values, `exec`/`eval`/`compile`/
  `__import__`/`__builtins__`, code, closure, frame and function internals (`__code__`, `__closure__`,
  `__globals__`, `f_back`, `__subclasses__`...), the import system (`sys.meta_path`, `path_hooks`,
  `sys.modules`, `importlib`), code from data (`marshal`, `pickle`, `types.CodeType`, `torch.load`...),
  torch's private modules (`torch._C`, `torch._decomp`, `torch._refs`...), the grader's runtime modules;
- a module the exercise blocks (`BLOCKED`: torch in the scalar engine), processes (`PROCESS`) and native
  code (`NATIVE`: ctypes, cffi, a compiled file in the submission).
What honest code does stays allowed: printing, `.item()`, `.tolist()`, `torch.no_grad()`,
`requires_grad_(False)`, `isinstance`, `getattr(x, "data", x)`, dunder methods a class defines.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from autograder.runtime.names import AUTODIFF_LIBRARIES, FORWARD_AD, FUNC_TRANSFORMS
from autograder.integrity.labels import AUTOGRAD, BLOCKED, NATIVE, PROCESS, UNREADABLE

# Attribute or imported names that reach autograd whatever they are called on.
AUTOGRAD_NAMES = {
    "autograd": "autograd", "functorch": "functorch", "_functorch": "torch.func", "grad_and_value": "torch.func",
    "grad_fn": "an autograd graph node", "next_functions": "autograd graph nodes",
    "enable_grad": "grad mode switched on", "register_hook": "autograd hooks",
    "vjp": "autograd (vjp)", "jvp": "autograd (jvp)", "jacrev": "autograd (jacrev)", "jacfwd": "autograd (jacfwd)",
    "jacobian": "autograd (jacobian)", "hessian": "autograd (hessian)", "linearize": "autograd (linearize)",
    "_decomp": "PyTorch's backward formulas", "decompositions": "PyTorch's backward formulas",
    **dict.fromkeys(("_execution_engine", "_ImperativeEngine", "_EngineBase", "run_backward", "_engine_run_backward"),
                    "the autograd engine"),
    **dict.fromkeys(("forward_ad", *FORWARD_AD, "unpack_dual", "_fw_grad", "_make_dual", "_set_fwd_grad_enabled"),
                    "forward-mode autograd"),
    **dict.fromkeys(("_pop_torch_dispatch_stack", "_unset_dispatch_mode", "_set_dispatch_mode", "_DisableTorchDispatch",
                     "_ExcludeDispatchKeyGuard", "_DisablePythonDispatcher", "_python_dispatch", "_pop_mode",
                     "_disable_current_modes", "_push_on_torch_dispatch_stack", "_get_dispatch_stack_at",
                     "saved_tensors_hooks", "disable_saved_tensors_hooks", "_saved_tensors_hooks_disable",
                     "save_on_cpu", "_pop_saved_tensors_default_hooks", "_push_saved_tensors_default_hooks", "_destroy",
                     "_registration_handles"), "the grader's guard switched off"),
    **dict.fromkeys(("_autograd_calls", "after_case", "trip_autograd", "guard", "_sticky", "_kernels", "__closure__",
                     "cell_contents"), "the grader's guard tampered with"),
}
# Names that are autograd only on torch (`torch.func`, `torch.set_grad_enabled(x)` unless x is False...).
TORCH_ONLY = {"func": "torch.func", "grad": "autograd (grad)", "library": "torch.library (kernels replaced)",
              **{name: f"torch.func.{name}" for name in FUNC_TRANSFORMS if name != "grad"}}
# Modules that are a route wherever they are imported: (category, why).
_DIFF = (AUTOGRAD, "a library that differentiates")
ROUTE_MODULES = {
    **dict.fromkeys(AUTODIFF_LIBRARIES, _DIFF), "functorch": (AUTOGRAD, "functorch"),
    "multiprocessing": (PROCESS, "a new process"), "subprocess": (PROCESS, "a new process"),
    "pty": (PROCESS, "a new process"), "concurrent.futures.process": (PROCESS, "a new process"),
    "ctypes": (NATIVE, "native code (ctypes)"), "_ctypes": (NATIVE, "native code (ctypes)"),
    "cffi": (NATIVE, "native code (cffi)"),
    **dict.fromkeys(("importlib", "imp", "pkgutil", "zipimport", "runpy", "builtins", "__builtin__", "_imp",
                     "_frozen_importlib", "_frozen_importlib_external"), (UNREADABLE, "the import system")),
    **dict.fromkeys(("marshal", "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "copyreg", "code",
                     "codeop", "_thread_code"), (UNREADABLE, "code from data")),
    # the student's process runtime: nothing a solution needs, and the way to the guard and the driver's torch
    **dict.fromkeys(("autograder", "runtime", "worker", "wire", "verdicts", "guard", "student_side", "drivers", "__main__"),
                    (UNREADABLE, "the grader's runtime")),
}
# torch's private modules are default-deny: the ones a solution may touch.
TORCH_PRIVATE_ALLOWED = frozenset({"_assert"})
# Attributes that reach code, closure, frame, function or class-hierarchy internals.
INTERNALS = frozenset({
    "__code__", "__closure__", "__globals__", "__builtins__", "__subclasses__", "__mro__", "__bases__", "__base__",
    "__self__", "__func__", "__wrapped__", "__defaults__", "__kwdefaults__", "__traceback__", "__loader__",
    "__spec__", "__reduce__", "__reduce_ex__", "__import__", "__subclasshook__", "__init_subclass__",
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "co_names",
    "meta_path", "path_hooks", "path_importer_cache", "_getframe", "_current_frames", "settrace", "setprofile",
    "currentframe", "getouterframes", "getinnerframes", "getframeinfo", "CodeType", "FunctionType", "LambdaType",
    "CellType", "ModuleType", "FrameType", "new_class", "exec_module", "load_module", "create_module",
    "find_spec", "find_module", "spec_from_loader", "spec_from_file_location", "module_from_spec", "reload",
})
# Builtins that read or run code by a name or text only known at run time.
CODE_BUILTINS = frozenset({"exec", "eval", "compile", "__import__", "__builtins__", "breakpoint"})
ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr"})
NAMESPACE_BUILTINS = frozenset({"globals", "vars", "locals"})
# torch's entry points that load or compile code the scan cannot read.
TORCH_CODE = {"load": "torch.load (code from data)", "jit": "torch.jit (compiled code)",
              "compile": "torch.compile (compiled code)", "package": "torch.package (code from data)",
              "hub": "torch.hub (code from the network)", "fx": "torch.fx (code built at run time)",
              "export": "torch.export (code built at run time)"}
# Names that are a route whatever they are called on, of another category than autograd.
OTHER_NAMES = {
    **dict.fromkeys(("get_objects", "get_referrers", "get_referents"), (UNREADABLE, "gc object walks")),
    **dict.fromkeys(("fork", "forkpty", "posix_spawn", "posix_spawnp", "ProcessPoolExecutor"), (PROCESS, "a new process")),
    **dict.fromkeys(("CDLL", "PyDLL", "cdll", "pydll", "dlopen"), (NATIVE, "native code")),
}
OS_ROUTES = {"system", "popen", "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
             "spawnv", "spawnve", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe", "startfile"}
# Calls whose string arguments name what they reach (read, and checked like names).
DYNAMIC_CALLS = {"getattr", "setattr", "hasattr", "delattr", "__import__", "import_module", "eval", "exec",
                 "compile", "attrgetter", "methodcaller", "__getattribute__", "__getattr__", "__setattr__",
                 "__delattr__", "reload", "find_spec"}
# Of those, the ones whose name argument must be a constant (hasattr only asks).
NAMED_BY_TEXT = {"getattr": 1, "setattr": 1, "delattr": 1, "__getattribute__": 0, "__getattr__": 0,
                 "__setattr__": 0, "__delattr__": 0, "attrgetter": 0, "methodcaller": 0}
# Files an import can load that are not source the scan could read.
NOT_SOURCE = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".pth", ".egg", ".whl")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def scan_submission(submission: Path, module_files, function: str, blocked=()) -> list[tuple[str, str]]:
    """The policy's findings against an exercise: [(category, "line 12: torch.ops.aten.tanh_backward (a
    PyTorch backward kernel)"), ...] over what the exercise's files (`module_files`, relative to
    `submission`; the first holds `function`) can run. `blocked`: module names the exercise does not allow."""
    submission = Path(submission)
    found: list[tuple[str, str]] = []
    for i, rel in enumerate(module_files):
        path = submission / rel
        parts = Path(rel).parts
        for k in range(1, len(parts)):  # importing a.b runs a/__init__.py first
            init = submission.joinpath(*parts[:k], "__init__.py")
            if init.is_file():
                found += _scan_path(init, "", submission, tuple(blocked))
        found += _scan_path(path, function if i == 0 else "", submission, tuple(blocked))
    return list(dict.fromkeys(found))


def autograd_in_source(path: Path, function: str, blocked=()) -> list[str]:
    """Every finding's text (any category) against `function` in the file `path` (see `scan_submission`)."""
    path = Path(path)
    return [text for _, text in _scan_path(path, function, path.parent, tuple(blocked))]


def _scan_path(path: Path, function: str, root: Path, blocked: tuple) -> list[tuple[str, str]]:
    try:
        source = path.read_text(errors="replace")
    except OSError:
        return []
    return list(_scan_file(source, function, str(path.parent), path.name, str(root), blocked, (str(path),)))


def _local_files(module: str, folder: str, root: str) -> list[Path]:
    """The submission's files an `import module` (top-level name) can load, from the importing file's folder or
    the submission's root: source first, then anything else Python would import (a .pyc, a .so)."""
    out = []
    for base in dict.fromkeys((Path(folder), Path(root))):
        for candidate in (base / f"{module}.py", base / module / "__init__.py"):
            if candidate.is_file():
                out.append(candidate)
        try:
            out += sorted(p for p in base.iterdir() if p.is_file() and p.name.split(".")[0] == module
                          and p.name.endswith(NOT_SOURCE))
        except OSError:
            pass
    return out


@functools.lru_cache(maxsize=256)  # a submission's file is scanned once per exercise, not once per case
def _scan_file(source: str, function: str, folder: str, name: str, root: str, blocked: tuple,
               seen: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    try:
        scan = _parsed(source, name, blocked)
        roots = scan.reachable(function) if function else None
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # it will not import either: that costs it
        return ()
    found = [(cat, text) for where, cat, text in scan.findings if roots is None or where is None or where in roots]
    imported = {m for where, modules in scan.local_imports.items() if roots is None or where is None or where in roots
                for m in modules}
    for module in sorted(imported):  # the local modules it imports run too: all of their code
        for candidate in _local_files(module, folder, root):
            if str(candidate) in seen:
                continue
            shown = _relative(candidate, root)
            if candidate.name.endswith(NOT_SOURCE):
                category = NATIVE if candidate.suffix in (".so", ".pyd", ".dll", ".dylib") else UNREADABLE
                found.append((category, f"import {module}: {shown} is not source code"))
                continue
            try:
                text = candidate.read_text(errors="replace")
            except OSError:
                continue
            found += [(cat, f"{shown}, {f}") for cat, f in
                      _scan_file(text, "", str(candidate.parent), candidate.name, root, blocked, seen + (str(candidate),))]
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=32)  # one file, many exercises: read once (reachability is per exercise)
def _parsed(source: str, name: str, blocked: tuple) -> "_Scan":
    return _Scan(ast.parse(source), name, blocked)


def _relative(path: Path, root: str) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


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
    """One file: its findings, each with the top-level definition it is in (None: what runs at import), and
    what refers to what, for reachability."""

    def __init__(self, tree: ast.Module, name: str, blocked: tuple = ()):
        self.findings: list[tuple[str | None, str, str]] = []
        self.local_imports: dict[str | None, set[str]] = {}
        self.refs: dict[str | None, set[str]] = {}
        self.blocked = set(blocked)
        body = [stmt for stmt in tree.body if not _is_main_guard(stmt)]
        nodes = _walk(tree)  # once: every pass below filters this list (ast.walk is slow on a notebook's module)
        self.defined = {n.name for stmt in body for n in _walk(stmt)
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.own_backward = "backward" in self.defined
        self.consts = _string_constants(nodes)
        self.choices = _string_choices(nodes, self.consts)
        self.call_of = {id(n.func): n for n in nodes if isinstance(n, ast.Call)}
        self.torch_aliases = {"torch"}
        self.sys_aliases = {"sys"}
        imports = [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in imports:
            if isinstance(node, ast.Import):
                self.torch_aliases |= {a.asname for a in node.names if a.name == "torch" and a.asname}
                self.sys_aliases |= {a.asname for a in node.names if a.name == "sys" and a.asname}
        # names bound to something of torch's: `import torch as t`, `from torch import ops`, `aten = torch.ops.aten`
        self.torch_names = set(self.torch_aliases)
        assigns = [n for n in nodes if isinstance(n, ast.Assign)]
        for _ in range(3):
            for node in imports:
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                    self.torch_names |= {a.asname or a.name for a in node.names}
                elif isinstance(node, ast.Import):
                    self.torch_names |= {a.asname for a in node.names if a.name.startswith("torch.") and a.asname}
            for node in assigns:
                if self.from_torch(node.value):
                    self.torch_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        self.top = {}   # name -> top-level definition node
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.top[stmt.name] = stmt
                for part, where in _split_definition(stmt):
                    self._scan(part, where)
            else:
                self._scan(stmt, None)
        self.methods = {}  # method name -> top-level class names that define it
        for top_name, node in self.top.items():
            if isinstance(node, ast.ClassDef):
                for sub in _walk(node):
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

    def torch_module_chain(self, node: ast.AST) -> bool:
        """`torch`, `torch.x.y` or an alias of one: a module path of torch's, not a tensor or a call's result."""
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.torch_names

    def reachable(self, function: str) -> set[str]:
        """Top-level definitions `function` ("f", "Cls" or "Cls.method") can run, by the names it uses; what
        runs at import uses runs for every exercise."""
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

    def _flag(self, where, node: ast.AST, what: str, why: str, category: str = AUTOGRAD) -> None:
        self.findings.append((where, category, f"line {getattr(node, 'lineno', '?')}: {_short(what)} ({why})"))

    def _check_name(self, where, node, name: str, call: ast.Call | None, on_torch: bool) -> None:
        full = _Source(call or node)  # printed only when flagged (ast.unparse is slow)
        if name in self.blocked:
            self._flag(where, node, full, f"{name} is not allowed here", BLOCKED)
            return
        if name in self.defined and name != "backward" and not (isinstance(node, ast.Attribute) and
                                                                  self.from_torch(node.value)):
            return  # the student's own `vjp` or `jacobian` method, called on their own object
        if name in AUTOGRAD_NAMES:
            self._flag(where, node, full, AUTOGRAD_NAMES[name])
        elif name in OTHER_NAMES:
            self._flag(where, node, full, OTHER_NAMES[name][1], OTHER_NAMES[name][0])
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
        elif name in INTERNALS:
            self._flag(where, node, full, "code, frame or import-system internals", UNREADABLE)

    def _check_string(self, where, node, text: str, dynamic: bool, on_torch: bool = False) -> None:
        """A string that names a route: exactly an identifier or a dotted path (prose is not flagged), or
        any string given to getattr/import/eval (`on_torch`: looked up on something of torch's)."""
        text = text.strip()
        if not text or (" " in text and not dynamic) or len(text) > 200:
            return
        for segment in _IDENT.findall(text):
            if dynamic and segment in self.blocked:
                self._flag(where, node, repr(text), f"{segment} is not allowed here, reached through a string", BLOCKED)
                return
            if segment in AUTOGRAD_NAMES or segment in ROUTE_MODULES or (segment in TORCH_ONLY and dynamic) \
                    or ("backward" in segment and (segment not in self.defined or on_torch) and segment != "backward") \
                    or segment in ("set_grad_enabled", "_set_grad_enabled") \
                    or (segment == "backward" and dynamic and not self.own_backward):
                if not dynamic and segment in self.defined:
                    continue
                if segment in TORCH_ONLY and not on_torch and segment not in AUTOGRAD_NAMES:
                    continue
                category = ROUTE_MODULES[segment][0] if segment in ROUTE_MODULES and segment not in AUTOGRAD_NAMES \
                    else AUTOGRAD
                if category != AUTOGRAD and not dynamic:
                    continue  # a module's name in prose-like data ("autograder") is no route by itself
                self._flag(where, node, repr(text), "reached through a string", category)
                return
            if dynamic and (segment in INTERNALS or segment in OTHER_NAMES or segment in CODE_BUILTINS
                            or (on_torch and segment.startswith("_") and not segment.startswith("__")
                                and segment not in TORCH_PRIVATE_ALLOWED)):
                self._flag(where, node, repr(text), "internals reached through a string", UNREADABLE)
                return

    def _scan(self, root: ast.AST, where: str | None) -> None:
        refs = self.refs.setdefault(where, set())
        for node in _walk(root):
            if isinstance(node, ast.Name):
                refs.add(node.id)
                self._check_builtin(where, node)
                if node.id in self.blocked:
                    self._flag(where, node, node.id, f"{node.id} is not allowed here", BLOCKED)
                elif node.id in GRAD_MODE_CALLS and node.id not in self.defined:  # `from torch import set_grad_enabled`
                    self._check_name(where, node, node.id, self.call_of.get(id(node)), False)
            elif isinstance(node, ast.Attribute):
                refs.add(node.attr)
                call = self.call_of.get(id(node))
                on_torch = isinstance(node.value, ast.Name) and node.value.id in self.torch_aliases
                self._check_name(where, node, node.attr, call, on_torch)
                self._check_attribute(where, node)
            elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name in DYNAMIC_CALLS and not (isinstance(node.func, ast.Attribute) and name in CODE_BUILTINS
                                                  and name != "__import__"):
                    texts = [_fold(a, self.consts) for a in node.args[:2]]
                    on_torch = name in ("__import__", "import_module", "reload") or \
                        bool(node.args) and self.from_torch(node.args[0])
                    for arg, text in zip(node.args[:2], texts):
                        if text is not None:
                            self._check_string(where, node, text, dynamic=True, on_torch=on_torch)
                            refs.update(_IDENT.findall(text))
                    position = NAMED_BY_TEXT.get(name)
                    choices = self.choices.get(getattr(node.args[position], "id", None)) \
                        if position is not None and len(node.args) > position else None
                    for text in choices or ():  # `for k in ("W1", "b1"): getattr(ctx, k)`: each name is read
                        self._check_string(where, node, text, dynamic=True, on_torch=on_torch)
                        refs.update(_IDENT.findall(text))
                    if position is not None and not choices and (
                            len(node.args) <= position or texts[position] is None
                            or any(isinstance(a, ast.Starred) for a in node.args)):
                        self._flag(where, node, _unparse(node), "an attribute name computed at run time", UNREADABLE)
                self._check_namespace_call(where, node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self._check_import(where, node)
            elif isinstance(node, ast.Subscript):
                text = _fold(node.slice, self.consts)
                if _is_namespace(node.value):
                    if text is not None:
                        self._check_string(where, node, text, dynamic=True)
                        refs.update(_IDENT.findall(text))
                    else:
                        self._flag(where, node, _unparse(node), "a namespace indexed by a name computed at run time",
                                   UNREADABLE)
            if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr, ast.Call)) and not _is_docstring(node):
                text = _fold(node, self.consts)
                if text is not None:
                    refs.update(_IDENT.findall(text))  # a name in a string may be looked up by it
                    if not isinstance(node, ast.Constant) or _IDENT.fullmatch(text.replace(".", "_") or "-"):
                        self._check_string(where, node, text, dynamic=False)

    def _check_builtin(self, where, node: ast.Name) -> None:
        """exec/eval/compile/__import__ anywhere; getattr & co. and globals/vars/locals passed around as values
        (`g = getattr`), where the scan could not follow what they are given."""
        if node.id in self.defined:
            return
        call = self.call_of.get(id(node))
        if node.id in CODE_BUILTINS:
            if node.id == "__import__" and call is not None and call.args and _fold(call.args[0], self.consts):
                return  # a constant name: read as an import (and checked as a string)
            self._flag(where, node, _unparse(call or node), "code the scan cannot read", UNREADABLE)
        elif node.id in ATTRIBUTE_BUILTINS | NAMESPACE_BUILTINS and call is None:
            self._flag(where, node, node.id, "a reflective builtin used as a value", UNREADABLE)

    def _check_attribute(self, where, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id == "os" and node.attr in OS_ROUTES:
            self._flag(where, node, _unparse(node), "a new process", PROCESS)
        if node.attr == "modules" and (isinstance(value, ast.Name) and value.id in self.sys_aliases
                                       or isinstance(value, ast.Attribute) and value.attr == "sys"):
            self._flag(where, node, _unparse(node), "the import system", UNREADABLE)
        elif node.attr == "sys" and not (isinstance(value, ast.Name) and value.id in self.sys_aliases):
            self._flag(where, node, _unparse(node), "sys reached through another module", UNREADABLE)
        if node.attr in self.blocked and node.attr not in self.defined:
            self._flag(where, node, _unparse(node), f"{node.attr} is not allowed here", BLOCKED)
        if self.torch_module_chain(value):
            if node.attr in TORCH_CODE:
                self._flag(where, node, _unparse(node), TORCH_CODE[node.attr], UNREADABLE)
            elif node.attr.startswith("_") and not node.attr.startswith("__") and \
                    node.attr not in TORCH_PRIVATE_ALLOWED and node.attr not in AUTOGRAD_NAMES:
                self._flag(where, node, _unparse(node), "torch's private internals", UNREADABLE)

    def _check_namespace_call(self, where, node: ast.Call) -> None:
        """`globals().get(name)`, `vars(x).update(...)`, `obj.__dict__.setdefault(name, ...)`: a namespace read
        or written by names the scan cannot read."""
        func = node.func
        if isinstance(func, ast.Attribute) and _is_namespace(func.value) and func.attr in (
                "get", "pop", "setdefault", "update", "__getitem__", "__setitem__", "__delitem__", "values", "items"):
            texts = [_fold(a, self.consts) for a in node.args[:1]]
            if func.attr in ("update", "values", "items", "__setitem__") or not texts or texts[0] is None:
                self._flag(where, node, _unparse(node), "a namespace read or written by computed names", UNREADABLE)
            else:
                self._check_string(where, node, texts[0], dynamic=True)

    def _check_import(self, where, node) -> None:
        imports = self.local_imports.setdefault(where, set())
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                imports.add(module.split(".")[0] or node.names[0].name)
                imports |= {a.name for a in node.names} if not module else set()
            else:
                imports.add(module.split(".")[0])
                imports |= {f"{module}.{a.name}".split(".")[0] for a in node.names}
            paths = [f"{module}.{a.name}" if module else a.name for a in node.names]
            if node.level and module:
                paths = [module] + paths
        else:
            paths = [a.name for a in node.names]
            imports |= {a.name.split(".")[0] for a in node.names}
        for path in paths:
            segments = path.split(".")
            level = getattr(node, "level", 0)
            if segments[0] in self.blocked and not level:
                # A literal import of a blocked module is refused where it runs (the import blocker, which only
                # constructs this policy refuses could remove), costing the op that runs it, with its line.
                return
            for i, segment in enumerate(segments):
                on_torch = i > 0 and segments[i - 1] == "torch"
                dotted = ".".join(segments[: i + 1])
                route = ROUTE_MODULES.get(dotted) if not level else None
                if route is None and i == 0 and not level:
                    route = ROUTE_MODULES.get(segment)
                if route is not None:
                    self._flag(where, node, f"import {path}", route[1], route[0])
                    return
                if segment in AUTOGRAD_NAMES or (segment in TORCH_ONLY and on_torch) or \
                        ("backward" in segment and segment not in self.defined and segment != "backward"):
                    why = AUTOGRAD_NAMES.get(segment) or TORCH_ONLY.get(segment) or "a PyTorch backward kernel"
                    self._flag(where, node, f"import {path}", why)
                    return
                if segment in OTHER_NAMES:
                    self._flag(where, node, f"import {path}", OTHER_NAMES[segment][1], OTHER_NAMES[segment][0])
                    return
                if segment in INTERNALS or (segment in self.sys_aliases | {"sys"} and i == 0 and len(segments) > 1
                                            and segments[1] == "modules"):
                    self._flag(where, node, f"import {path}", "code, frame or import-system internals", UNREADABLE)
                    return
                if on_torch and (segment in TORCH_CODE or (segment.startswith("_") and not segment.startswith("__")
                                                           and segment not in TORCH_PRIVATE_ALLOWED)):
                    self._flag(where, node, f"import {path}", TORCH_CODE.get(segment) or "torch's private internals",
                               UNREADABLE)
                    return


def _split_definition(stmt) -> list[tuple[ast.AST, str | None]]:
    """A top-level def or class in parts: what runs at import (decorators, default values, base classes,
    a class body's statements) and what runs when it is called (function and method bodies)."""
    name = stmt.name
    parts: list[tuple[ast.AST, str | None]] = [(d, None) for d in stmt.decorator_list]
    if isinstance(stmt, ast.ClassDef):
        parts += [(b, None) for b in stmt.bases] + [(k, None) for k in stmt.keywords]
        for sub in stmt.body:
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                parts += [(p, None if w is None else name) for p, w in _split_definition(sub)]
            else:
                parts.append((sub, None))
    else:
        args = stmt.args
        parts += [(d, None) for d in args.defaults + [d for d in args.kw_defaults if d is not None]]
        if stmt.returns is not None:
            parts.append((stmt.returns, None))
        parts += [(s, name) for s in stmt.body]
        for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None and a.annotation is not None:
                parts.append((a.annotation, None))
    return parts


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


def _string_constants(nodes: list) -> dict:
    """Names assigned a foldable string (once), so that `name = "auto" + "grad"; getattr(torch, name)`
    is read; statements that are bare strings (docstrings) are marked and never flagged. `nodes`: the
    module's, as _walk lists them."""
    consts, counts = {}, {}
    for node in nodes:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            node.value._statement = True
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            counts[node.targets[0].id] = counts.get(node.targets[0].id, 0) + 1
    for _ in range(3):  # names built from names
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and counts.get(node.targets[0].id) == 1:
                value = _fold(node.value, consts)
                if value is not None:
                    consts[node.targets[0].id] = value
    return consts


def _string_choices(nodes: list, consts: dict) -> dict[str, tuple[str, ...]]:
    """Loop variables that only ever take constant strings (`for k in ("W1", "b1")`, `for k in NAMES` with NAMES
    a tuple or list of strings assigned once, comprehensions alike), so that `getattr(ctx, k)` is read as
    each of them. A name bound anywhere else as well is left out."""
    collections, counts = {}, {}
    for node in nodes:
        for target in getattr(node, "targets", None) or ([node.target] if isinstance(node, (ast.For, ast.comprehension,
                                                                                         ast.AugAssign, ast.AnnAssign))
                                                          else []):
            for name in _walk(target):
                if isinstance(name, ast.Name):
                    counts[name.id] = counts.get(name.id, 0) + 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [node.args.vararg, node.args.kwarg]:
                if a is not None:
                    counts[a.arg] = counts.get(a.arg, 0) + 2  # a parameter takes any value
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                counts[(a.asname or a.name).split(".")[0]] = 2

    def strings(node) -> tuple[str, ...] | None:
        if isinstance(node, ast.Name) and counts.get(node.id) == 1:
            return collections.get(node.id)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [_fold(e, consts) for e in node.elts]
            return tuple(values) if values and all(v is not None for v in values) else None
        return None

    for node in nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = strings(node.value)
            if value is not None:
                collections[node.targets[0].id] = value
    choices = {}
    for node in nodes:
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) and \
                counts.get(node.target.id) == 1:
            value = strings(node.iter)
            if value is not None:
                choices[node.target.id] = value
    return choices


def _walk(root: ast.AST) -> list:
    """Every node under `root`, `root` first, in ast.walk's order (breadth first), as a list: several times
    faster than ast.walk, and read by several passes."""
    out, i, AST = [root], 0, ast.AST
    while i < len(out):
        node = out[i]
        i += 1
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                out.extend(v for v in value if isinstance(v, AST))
            elif isinstance(value, AST):
                out.append(value)
    return out


class _Source:
    """A node's source text, made when it is first printed."""

    def __init__(self, node: ast.AST):
        self.node = node

    def __str__(self) -> str:
        return _unparse(self.node)


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (Exception, RecursionError):  # noqa: a node ast cannot print is still a finding
        return type(node).__name__


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
