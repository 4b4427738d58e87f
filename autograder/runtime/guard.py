"""Guards installed in the student's process before the student's code is imported: modules it may not
import, and the autograd guard (the gradients are to be computed by hand). Child-side: imports nothing
of the grader, and holds no reference to torch at module level (a student could read it from here).

The autograd guard has layers, because any one of them can be bypassed from inside the process:
1. tripwires on every Python entry point of autograd: `Tensor.backward`, `torch.autograd.*`,
   `torch.func`, forward-mode AD, the engine (`Variable._execution_engine`, `torch._C._ImperativeEngine`),
   and the one switch every grad-mode context goes through, `torch._C._set_grad_enabled`, which
   trips on True only: `torch.no_grad()` (and `set_grad_enabled(False)`, `inference_mode()`) keep working;
2. in the dispatcher, below every Python name: each PyTorch backward kernel (`aten::tanh_backward`,
   `_log_softmax_backward_data`, any `*_backward*` or `*_jvp` op) is replaced by one that refuses
   (`prepare()`, once per fork server), and autograd's saved-tensor hooks refuse any graph being
   recorded (a tensor saved for backward) and any backward pass over one (the engine, or `grad_fn`
   called by hand), however grad mode was switched on. Both cost nothing when autograd is not used
   (a `TorchDispatchMode` seeing every op cost ~12 us per op: +40% on backprop ninja);
3. an audit hook (which Python cannot remove) that refuses new processes and programs (a new
   interpreter has no guard at all), native code through `ctypes` or a compiled extension from outside
   the Python installation, `gc`'s object walks (the way to the originals the tripwires replaced) and
   `/proc/*/mem`; a new thread (which would start with grad mode on and no hooks) starts with grad mode
   off and the saved-tensor hooks pushed, and one still running when a case ends counts as tampering;
4. after each case, `after_case()` checks that the guards are intact (grad mode and forward AD off,
   the saved-tensor hooks ours, every tripwire in place, no extra thread) and restores them.
All of it is installed once, in the fork server before it serves (`install`: the refusals of layer 3
dormant there, since the server forks and calls native code), and each student process only switches it on
(`arm`) before the student's code runs, or takes it off where the exercise allows autograd (`disarm`).
What is found is appended to `_autograd_calls` (a route per entry, e.g. "torch.ops.aten.tanh_backward
(a PyTorch backward kernel)"; never text the student's code chose, which could carry a hidden case's
inputs into the feedback); the worker sends them with the case's reply and the grader gives the
exercise 0 with `autograd_used`. The static half is `integrity/scan.py`, in the grader.
"""
from __future__ import annotations

import functools
import os
import re
import sys

_autograd_calls: list[str] = []   # routes found during the current case (the worker clears it per case)
_sticky: list[str] = []           # routes found outside a case (at import) or tampering: every case keeps them

from .names import AUTODIFF_LIBRARIES, FORWARD_AD, FUNC_TRANSFORMS  # the one list, shared with the static policy

# Audit events refused once the guard is on: (event prefix, why).
_REFUSED_EVENTS = (
    ("os.fork", "a new process"), ("os.forkpty", "a new process"), ("os.exec", "a new program"),
    ("os.posix_spawn", "a new program"), ("os.spawn", "a new program"), ("os.system", "a shell command"),
    ("subprocess.Popen", "a new program"), ("pty.spawn", "a new program"),
    ("ctypes.", "native code"), ("gc.get_objects", "the grader's objects"),
    ("gc.get_referrers", "the grader's objects"), ("gc.get_referents", "the grader's objects"),
)


_PROC_MEM = re.compile(r"/proc/[^/]+(/task/[^/]+)?/mem")


class AutogradUsed(BaseException):
    """Raised in the student's process when it reaches for autograd; BaseException so that a
    student's `except Exception` does not swallow it (and the route is recorded anyway)."""


class BlockedImport(ImportError):
    pass


def _record(route: str, sticky: bool = False) -> None:
    if route not in _autograd_calls:
        _autograd_calls.append(route)
    if sticky and route not in _sticky:
        _sticky.append(route)


def _refuse(route: str, sticky: bool = False) -> AutogradUsed:
    _record(route, sticky)
    return AutogradUsed(f"{route}: this exercise must compute gradients by hand")


class _ImportBlocker:
    """A meta path finder that refuses the named top-level packages."""

    def __init__(self, names, why, autodiff=()):
        self.names, self.why, self.autodiff = set(names), why, set(autodiff)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top in self.autodiff:
            route = f"import {top} (a library that differentiates for you)"  # not the full name: the student's text
            _record(route, sticky=True)
            raise BlockedImport(f"{route}: this exercise must compute gradients by hand")
        if top in self.names:
            raise BlockedImport(f"import {fullname} is not allowed here: {self.why}")
        return None


def block_imports(names, why, autodiff=AUTODIFF_LIBRARIES) -> _ImportBlocker:
    """Refuse importing `names` (and the libraries that differentiate, `autodiff`; pass () to allow them)."""
    names, autodiff = set(names), set(autodiff) - set(names)
    loaded = {name for name in names | autodiff if name in sys.modules}  # a package's submodules need it loaded
    if loaded:
        for mod in list(sys.modules):
            if mod.partition(".")[0] in loaded:
                del sys.modules[mod]
    blocker = _ImportBlocker(names, why, autodiff)
    sys.meta_path.insert(0, blocker)
    return blocker


# -- the autograd guard ----------------------------------------------------------------------------------

_state: dict = {}   # filled by install: its check of the guards (the originals stay in its closure), and the
                    # switches `arm` and `disarm` (one of them used, both dropped, in each student process)


def _tripwire(route: str):
    def tripwire(*args, **kwargs):
        raise _refuse(route)
    tripwire.__name__ = tripwire.__qualname__ = "autograd_tripwire"
    return tripwire


def _grad_mode_route(frame) -> str:
    """Name the public API that asked for grad mode on (the frame that called `_set_grad_enabled`)."""
    code = frame.f_code if frame is not None else None
    if code is not None and code.co_filename.endswith(os.path.join("autograd", "grad_mode.py")):
        owner = frame.f_locals.get("self")
        kind = type(owner).__name__ if owner is not None else code.co_name
        return {"enable_grad": "torch.enable_grad()", "set_grad_enabled": "torch.set_grad_enabled(True)"}.get(
            kind, "torch.autograd.grad_mode (a subclass)")  # not the class's name: the student's text
    return "torch._C._set_grad_enabled(True)"


def trip_autograd() -> None:
    """Install the autograd guard for the rest of this process (see the module's docstring): `install()`
    (already done by the fork server: then only this process's own part is left) and `arm()`."""
    install()
    arm()


def arm() -> None:
    """Switch on the refusals that were installed dormant (the audit hook, compiled extensions) for the rest
    of this process. Called once, in the student's process, after what it does with native code itself
    (seccomp) and before any of the student's code runs; the switch is then unreachable (see `install`)."""
    switch = _state.pop("arm", None)
    undo = _state.pop("disarm", None)  # armed for good: what would undo the guard leaves the student's reach
    if switch is not None:
        switch(undo)  # kept, out of reach, rather than freed: freeing it dirties ~400 pages shared with the server


def disarm() -> None:
    """Undo `install()` in this process (an exercise that allows autograd): the originals back in place,
    grad mode as it was, no refusal left armed. The backward kernels stay refused (they are the server's)."""
    undo = _state.pop("disarm", None)
    if undo is None:  # armed already (the switch is gone), or nothing installed: nothing to undo
        return
    _state.pop("arm", None)
    _state.pop("check", None)
    undo()


def install() -> None:
    """Install every part of the autograd guard in this process, with the audit hook and the compiled
    extension guard dormant until `arm()`. The fork server calls this once before it
    serves: every student process inherits it ready, and only arms it (~0.1 ms instead of ~20 ms of wiring,
    imports and checks per child). The server never runs student code, and none of this refuses anything
    the server itself does. The switch that arms is a closure held only by `_state["arm"]`, which `arm()`
    pops: after that no object the student's code can reach refers to it (`gc`'s walks are refused)."""
    if "check" in _state or "disarm" in _state:
        return
    armed: list[bool] = []
    try:
        import torch
    except ImportError:  # no torch, no torch autograd: the libraries that differentiate are still refused
        blocker = block_imports((), "", AUTODIFF_LIBRARIES)
        _state["arm"] = armed.append
        _state["disarm"] = lambda: sys.meta_path.remove(blocker) if blocker in sys.meta_path else None
        return
    import torch.autograd.forward_ad
    import torch.autograd.functional
    import torch.func

    C = torch._C
    originals = {"set_grad": C._set_grad_enabled, "is_grad": C.is_grad_enabled,
                 "set_fwd": C._set_fwd_grad_enabled, "is_fwd": C._is_fwd_grad_enabled,
                 "push_hooks": C._autograd._push_saved_tensors_default_hooks,
                 "pop_hooks": C._autograd._pop_saved_tensors_default_hooks, "inference_mode": C._InferenceMode}
    set_grad, is_grad, is_fwd = (originals[k] for k in ("set_grad", "is_grad", "is_fwd"))
    modes_before = (is_grad(), is_fwd())
    wires: list[tuple[object, str, object]] = []
    replaced: list[tuple[object, str, object]] = []   # (owner, name, original): what `disarm` puts back

    def wire(owner, name: str, route: str, replacement=None) -> None:
        if hasattr(owner, name):
            replacement = replacement or _tripwire(route)
            replaced.append((owner, name, getattr(owner, name)))
            setattr(owner, name, replacement)
            wires.append((owner, name, replacement))

    # 1. tripwires on the Python entry points
    wire(torch.Tensor, "backward", "Tensor.backward()")
    for name in ("backward", "grad"):
        wire(torch.autograd, name, f"torch.autograd.{name}()")
    for name in dir(torch.autograd.functional):
        if not name.startswith("_") and callable(getattr(torch.autograd.functional, name)) and \
                getattr(getattr(torch.autograd.functional, name), "__module__", "").startswith("torch.autograd"):
            wire(torch.autograd.functional, name, f"torch.autograd.functional.{name}()")
    for name in FUNC_TRANSFORMS:
        wire(torch.func, name, f"torch.func.{name}()")
    import torch._functorch.eager_transforms as eager
    import torch._functorch.apis as apis
    for module in (eager, apis):
        for name in (*FUNC_TRANSFORMS, "grad_impl", "grad_and_value_impl"):
            wire(module, name, f"torch.func.{name}() (through torch._functorch)")
    # Not `unpack_dual`: torch's own tensor printing calls it (print(t), f"{t}", repr), and with no dual level
    # entered and no dual made (both tripwires) it can only return the tensor and no tangent.
    for name in FORWARD_AD:
        wire(torch.autograd.forward_ad, name, f"torch.autograd.forward_ad.{name} (forward-mode autograd)")
    for name in ("_make_dual", "_enter_dual_level"):
        wire(C, name, f"torch._C.{name} (forward-mode autograd)")
    wire(C, "_ImperativeEngine", "torch._C._ImperativeEngine (the autograd engine)")
    engine_route = "Variable._execution_engine (the autograd engine)"
    for holder in (torch.autograd.variable.Variable, getattr(torch.autograd, "graph", None)):
        if holder is not None and hasattr(holder, "_execution_engine"):
            wire(holder, "_execution_engine", engine_route, _EngineTripwire(engine_route))
    import torch.autograd.graph as graph
    for holder in (graph, torch.autograd):  # torch.autograd holds its own name for it
        wire(holder, "_engine_run_backward", engine_route)

    def guarded_set_grad_enabled(mode):
        if mode:
            raise _refuse(_grad_mode_route(sys._getframe(1)))
        return set_grad(False)

    def guarded_inference_mode(mode=True):
        if not mode:
            raise _refuse("torch.inference_mode(False) (switches grad mode on)")
        return originals["inference_mode"](mode)

    def guarded_set_fwd(mode):
        if mode:
            raise _refuse("torch._C._set_fwd_grad_enabled(True) (forward-mode autograd)")
        return originals["set_fwd"](False)

    wire(C, "_set_grad_enabled", "", guarded_set_grad_enabled)
    wire(C, "_InferenceMode", "", guarded_inference_mode)
    wire(C, "_set_fwd_grad_enabled", "", guarded_set_fwd)
    wire(torch.autograd.forward_ad, "_set_fwd_grad_enabled", "", guarded_set_fwd)
    set_grad(False)
    originals["set_fwd"](False)

    # 2. the kernels: PyTorch's backward kernels refuse (registered once, `prepare()`), and autograd's
    # saved-tensor hooks record any graph built (a tensor saved for backward) and any backward run over one
    # (a saved tensor unpacked: the engine, or a grad_fn called by hand), whatever switched grad mode on.
    prepare()
    autograd_c = C._autograd

    def packed(tensor):
        raise _refuse("an autograd graph recorded (grad mode switched on past the guard)")

    def unpacked(tensor):
        raise _refuse("a backward pass over an autograd graph (the engine, or grad_fn called by hand)")

    autograd_c._push_saved_tensors_default_hooks(packed, unpacked)
    hooks_top = functools.partial(autograd_c._top_saved_tensors_default_hooks, True)
    for name in ("_pop_saved_tensors_default_hooks", "_push_saved_tensors_default_hooks",
                 "_saved_tensors_hooks_disable"):
        wire(autograd_c, name, f"torch._C._autograd.{name} (the guard switched off)")
    for name in ("saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks"):
        wire(graph, name, f"torch.autograd.graph.{name} (the guard switched off)")

    # 3. threads start guarded: grad mode is per thread (on in a new one) and so are the saved-tensor hooks,
    # so every new thread gets both before it runs anything (a recursion in a big-stack thread is fair use).
    import _thread
    import threading
    start_new_thread = _thread.start_new_thread

    def guarded_start_new_thread(function, args, kwargs=None):
        def run(*a, **k):
            set_grad(False)
            originals["set_fwd"](False)
            originals["push_hooks"](packed, unpacked)
            return function(*a, **k)
        return start_new_thread(run, args, kwargs or {})

    for module in (_thread, threading):
        for name in ("start_new_thread", "start_new", "_start_new_thread"):
            if hasattr(module, name):
                wire(module, name, "", guarded_start_new_thread)
    for module in (_thread, threading):  # newer Pythons' entry points, not wrapped here: refused
        for name in ("start_joinable_thread", "_start_joinable_thread"):
            wire(module, name, f"_thread.{name.lstrip('_')}() (a new thread has grad mode on and no guard)")

    # processes, native code, gc walks: what no exercise needs and every bypass does. Dormant until `arm()`:
    # the server forks and calls native code; the student's process does too before it arms (seccomp).

    def audit(event, args):
        if not armed:
            return
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if _PROC_MEM.fullmatch(path):
                raise _refuse("open('/proc/.../mem') (a process's memory)", sticky=True)
            return
        for prefix, why in _REFUSED_EVENTS:
            if event.startswith(prefix):
                raise _refuse(f"{event} ({why})")

    sys.addaudithook(audit)
    # Its own switch: the guarded function is the student's to read (`_imp.create_dynamic.__closure__`), and
    # what it can reach must not switch the audit hook off.
    extensions_armed: list[bool] = []
    extension_guard = _refuse_foreign_extensions(extensions_armed)
    replaced.append((extension_guard[0], extension_guard[1], extension_guard[3]))
    wires.append(extension_guard[:3])
    blocker = block_imports((), "", AUTODIFF_LIBRARIES)
    threads = _thread_count()
    # A sample is enough (~1 us each): the library is destroyed whole, and the usual targets are in it.
    usual = {"aten::tanh_backward", "aten::_log_softmax_backward_data", "aten::_softmax_backward_data",
             "aten::embedding_dense_backward", "aten::native_batch_norm_backward", "aten::sigmoid_backward",
             "aten::threshold_backward"}
    kernel_ops = tuple(op for i, op in enumerate(_kernel_ops) if op in usual or i % 37 == 0)
    has_kernel = C._dispatch_has_kernel_for_dispatch_key

    def check() -> list[str]:
        """What was tampered with since the last check (each restored)."""
        tampered = []
        if is_grad():
            tampered.append("grad mode left on")
            set_grad(False)
        if is_fwd():
            tampered.append("forward AD left on")
            originals["set_fwd"](False)
        if hooks_top() != (packed, unpacked):
            tampered.append("saved-tensor hooks changed")
            originals["push_hooks"](packed, unpacked)
        for owner, name, replacement in wires:
            if getattr(owner, name, None) is not replacement:
                tampered.append(f"{getattr(owner, '__name__', '?')}.{name} replaced")
                setattr(owner, name, replacement)
        restored = [op for op in kernel_ops if not has_kernel(op, "AutogradCPU")]
        if restored:
            tampered.append("backward kernels restored")
        now = _thread_count()
        if now > threads >= 0:
            tampered.append("threads still running after the case")
        return tampered

    def undo() -> None:
        for owner, name, original in reversed(replaced):
            setattr(owner, name, original)
        if hooks_top() == (packed, unpacked):
            originals["pop_hooks"]()
        set_grad(modes_before[0])
        originals["set_fwd"](modes_before[1])
        if blocker in sys.meta_path:
            sys.meta_path.remove(blocker)

    def switch_on(keep=None) -> None:
        armed.append(keep or True)
        extensions_armed.append(True)

    _state.update(check=check, disarm=undo, arm=switch_on)


def _refuse_foreign_extensions(armed) -> tuple:
    """Compiled extension modules load from the Python installation only (once `armed`): one shipped in a
    submission is native code past every other guard (it could run libtorch's autograd).
    (owner, name, the guard, the original)."""
    import _imp
    import site
    import sysconfig

    roots = {os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                    sysconfig.get_paths().get("platlib", sys.prefix),
                                                    *getattr(site, "getsitepackages", lambda: [])()) if p}
    create_dynamic = _imp.create_dynamic

    def guarded_create_dynamic(spec, *args):
        origin = os.path.realpath(getattr(spec, "origin", None) or "")
        if armed and not any(origin.startswith(root) for root in roots):
            raise _refuse("a compiled extension from outside Python (native code)")
        return create_dynamic(spec, *args)

    _imp.create_dynamic = guarded_create_dynamic
    return _imp, "create_dynamic", guarded_create_dynamic, create_dynamic


_kernels: list = []  # the torch.library.Library that holds the refusing kernels (alive as long as the process)
_kernel_ops: list[str] = []  # the ops it covers ("aten::tanh_backward", ...)


def is_backward_kernel(op_name: str) -> bool:
    """`aten::tanh_backward`, `aten::_log_softmax_backward_data`, `aten::glu_jvp`...: autograd's formulas."""
    name = op_name.split("::", 1)[-1].split(".", 1)[0]
    return "backward" in name or name.endswith("_jvp")


def prepare() -> None:
    """Replace every PyTorch backward kernel (any aten op named `*_backward*` or `*_jvp`) with one that
    refuses, for CPU tensors with and without autograd (inference tensors skip the autograd key).

    Registering ~500 kernels takes ~25 ms: the fork server calls this once, before it forks, and every
    student process inherits it (and the modules `install` wires, already imported); `install` calls it too
    (a no-op then). The student's process never needs these kernels: the truth is computed in the grader's
    process."""
    if _kernels:
        return
    import warnings

    import torch
    # What `trip_autograd` wires, imported here once rather than in every student process (~14 ms each).
    import torch._functorch.apis  # noqa: F401
    import torch._functorch.eager_transforms  # noqa: F401
    import torch.autograd.forward_ad  # noqa: F401
    import torch.autograd.functional  # noqa: F401
    import torch.autograd.graph  # noqa: F401
    import torch.func  # noqa: F401

    library = torch.library.Library("aten", "IMPL")

    def refusing(op: str):
        def kernel(*args, **kwargs):
            raise _refuse(f"torch.ops.aten.{op} (a PyTorch backward kernel)")
        return kernel

    with warnings.catch_warnings():  # "overriding a previously registered kernel": that is the point
        warnings.simplefilter("ignore")
        for full_name in torch._C._dispatch_get_all_op_names():
            if full_name.startswith("aten::") and is_backward_kernel(full_name):
                op = full_name.split("::", 1)[1]
                try:
                    for key in ("AutogradCPU", "CPU"):
                        library.impl(op, refusing(op.split(".", 1)[0]), key)
                    _kernel_ops.append(full_name)
                except RuntimeError:  # an op with no schema for this key: nothing to refuse there
                    pass
    _kernels.append(library)


class _EngineTripwire:
    """Stands in for the autograd engine object: any of its methods is a tripwire."""

    def __init__(self, route: str):
        self._route = route

    def __getattr__(self, name):
        known = name if name in ("run_backward", "queue_callback", "is_checkpoint_valid") else "..."
        raise _refuse(self._route.replace(" (", f".{known} (", 1))


def _thread_count() -> int:
    """Threads that run Python (a BLAS library's own worker threads run none, and are no route)."""
    return len(sys._current_frames())


def after_case() -> list[str]:
    """Check that the guards are still what `trip_autograd` installed, restore them, and add what was
    found (tampering, and what was found at import) to `_autograd_calls`. Returns `_autograd_calls`."""
    tampered = _state["check"]() if "check" in _state else []
    if tampered:
        _record(f"guard tampered with: {'; '.join(tampered[:2])}", sticky=True)
    for route in _sticky:
        _record(route)
    return _autograd_calls
