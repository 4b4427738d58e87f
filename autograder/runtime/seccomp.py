"""Installs the seccomp allowlist on the student's process, with libseccomp (through `pyseccomp`, ctypes over
the system's libseccomp.so.2, or libseccomp's own `seccomp` bindings: the same API).

The policy is data and lives with the grader (autograder/sandbox/policy.py); this runtime only receives it:
the runner puts it, as JSON, in the fork server's environment at its start (AUTOGRADER_SECCOMP_POLICY), so
nothing of the grader is imported here. The server builds the filter once (`prepare`: every rule that does
not name a pid) and never loads it; each forked child adds the rules naming its own pid and loads it
(`install`). Where the bindings, libseccomp or seccomp itself are missing, the child runs without the
filter, as it did before where the machine had no seccomp; the sandbox's description says so.
"""
from __future__ import annotations

import errno
import json
import os
import sys

POLICY_ENV = "AUTOGRADER_SECCOMP_POLICY"
SELF = "self"


def _bindings():
    for name in ("pyseccomp", "seccomp"):
        try:
            return __import__(name)
        except Exception:  # not installed, or libseccomp not found (pyseccomp raises RuntimeError then)
            continue
    return None


def _errno(name) -> int:
    value = getattr(errno, str(name), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {name!r}")
    return value


def _condition(lib, cond: dict, me: int):
    value = me if cond["value"] == SELF else int(cond["value"])
    if cond["op"] == "eq":
        return lib.Arg(int(cond["arg"]), lib.EQ, value)
    if cond["op"] == "masked_eq":
        return lib.Arg(int(cond["arg"]), lib.MASKED_EQ, int(cond["mask"]), value)
    raise ValueError(f"unknown comparison {cond['op']!r}")


def _names_self(alternative: list) -> bool:
    return any(cond.get("value") == SELF for cond in alternative)


class Prepared:
    """A filter holding every rule of the policy that names no pid, and the rules that do (added per child)."""

    def __init__(self, lib, flt, per_child: list):
        self.lib, self.filter, self.per_child = lib, flt, per_child


def prepare(policy_json: str | None) -> Prepared | str:
    """In the fork server, once: the policy's filter without its per-pid rules, or why there is none."""
    if not policy_json:
        return "no seccomp policy was given"
    if not sys.platform.startswith("linux"):
        return "no seccomp on this system"
    lib = _bindings()
    if lib is None:
        return "libseccomp cannot be loaded"
    try:
        policy = json.loads(policy_json)
        deny = lib.ERRNO(_errno(policy.get("default_errno", "EPERM")))
        flt = lib.SyscallFilter(deny)
        flt.set_attr(lib.Attr.ACT_BADARCH, deny)   # another architecture's (or the x32 ABI's) numbers
        known = {}
        for name in set(policy.get("allow", [])) | set(policy.get("allow_if", {})) | set(policy.get("errno", {})):
            try:
                number = lib.resolve_syscall(lib.Arch.NATIVE, name)
            except Exception:
                continue
            if isinstance(number, int) and number >= 0:  # unknown here, or another architecture's: stays denied
                known[name] = number
        for name in policy.get("allow", []):
            if name in known:
                flt.add_rule(lib.ALLOW, known[name])
        for name, value in policy.get("errno", {}).items():
            if name in known:
                flt.add_rule(lib.ERRNO(_errno(value)), known[name])
        per_child = []
        for name, alternatives in policy.get("allow_if", {}).items():
            if name not in known:
                continue
            for alternative in alternatives:
                if _names_self(alternative):
                    per_child.append((known[name], alternative))
                else:
                    flt.add_rule(lib.ALLOW, known[name], *(_condition(lib, c, 0) for c in alternative))
        return Prepared(lib, flt, per_child)
    except Exception as exc:  # a malformed policy or a libseccomp error: no filter, as on a machine without one
        return f"the seccomp filter cannot be built ({exc!r})"[:300]


def install(prepared: Prepared | str) -> str:
    """In the child, before the student's code runs: the filter, for this process (and any thread it has).
    '' when installed, else why not (the child then runs without it)."""
    if not isinstance(prepared, Prepared):
        return prepared
    lib, flt, me = prepared.lib, prepared.filter, os.getpid()
    try:
        for number, alternative in prepared.per_child:
            flt.add_rule(lib.ALLOW, number, *(_condition(lib, c, me) for c in alternative))
        try:
            flt.set_attr(lib.Attr.CTL_TSYNC, 1)
        except OSError:  # an old kernel or libseccomp: the child has no other thread yet anyway
            pass
        flt.load()
    except Exception as exc:
        return f"the seccomp filter cannot be installed ({exc!r})"[:300]
    return ""
