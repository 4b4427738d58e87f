"""What an integrity finding is called and how it reads: one category (and mistake id) per kind of thing that
happened, from the static policy (`integrity/scan.py`, the verdict) or the guard in the student's process
(`guard.py`, a second line). Only autograd says "autograd"; the rest say what the code did, without
accusing anyone of cheating (a thread left running or a `__pycache__`-style file is usually an accident).
"""
from __future__ import annotations

AUTOGRAD = "autograd_used"          # autograd, or a library that differentiates
BLOCKED = "blocked_module"          # a module the exercise does not allow (torch in the scalar engine)
NATIVE = "native_code"              # ctypes, cffi, a compiled extension shipped with the submission
UNREADABLE = "unreadable_code"      # reflection / import machinery / code from data: the scan cannot check it
PROCESS = "new_process"             # subprocess, os.fork, multiprocessing
THREAD = "thread_left_running"      # a thread still running when the function returned

# When several kinds are found, the first in this order names the verdict.
ORDER = (AUTOGRAD, BLOCKED, NATIVE, UNREADABLE, PROCESS, THREAD)

_MESSAGE = {
    AUTOGRAD: "uses autograd ({routes}): compute the gradients by hand",
    BLOCKED: "reaches a module this exercise does not allow ({routes}): {why}",
    NATIVE: "loads native code ({routes}): graded code may run Python and PyTorch's public operations only",
    UNREADABLE: "uses code the grader cannot check ({routes}): write it plainly, with names spelled out",
    PROCESS: "starts a process ({routes}): graded code runs in a single process",
    THREAD: "left a thread running when the function returned ({routes}): join every thread you start",
}

HINTS = {
    AUTOGRAD: "this exercise is about computing the gradients by hand: autograd (or a library that "
              "differentiates) may be used to check your work, outside the graded functions (e.g. under "
              "`if __name__ == \"__main__\":`)",
    BLOCKED: "the module named is not allowed in this exercise's code",
    NATIVE: "graded code may not load native code (ctypes, cffi, compiled extensions or .so files)",
    UNREADABLE: "the grader reads every file of the submission to check that gradients are computed by hand; "
                "it refuses what it cannot read: attribute names computed at run time (getattr with a "
                "variable), exec/eval/compile, code, frame and closure objects (__code__, __closure__, "
                "__globals__, f_back...), edits to the import system (sys.modules, sys.meta_path, importlib), "
                "pickle/marshal, torch's private modules, and files that are not source (.pyc, .so)",
    PROCESS: "graded code may not start processes or programs (subprocess, os.fork, os.system, multiprocessing)",
    THREAD: "a thread that outlives the function could still be working when the answer is judged: join it",
}


def message(category: str, routes: list[str], why: str = "") -> str:
    return _MESSAGE.get(category, _MESSAGE[UNREADABLE]).format(routes="; ".join(routes[:3]), why=why or "see the "
                                                               "exercise's instructions")


def worst(categories) -> str:
    """The category that names a verdict among those found."""
    return min(categories, key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER))


def classify(route: str) -> str:
    """The category of a route the guard in the student's process recorded. Routes are the guard's own fixed
    texts (never the student's), so their wording is reliable."""
    if route.startswith("guard tampered with: "):
        items = route[len("guard tampered with: "):].split("; ")
        return THREAD if all(i.startswith("threads still running") for i in items) else AUTOGRAD
    if any(w in route for w in ("(a new process)", "(a new program)", "(a shell command)")):
        return PROCESS
    if "(native code)" in route or "compiled extension" in route:
        return NATIVE
    if "(the grader's objects)" in route or "(a process's memory)" in route:
        return UNREADABLE
    if "a new thread has grad mode on" in route:
        return THREAD
    return AUTOGRAD
