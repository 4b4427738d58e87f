"""Installs the seccomp allowlist on the student's process, with libseccomp (through `pyseccomp`, ctypes over
the system's libseccomp.so.2, or libseccomp's own `seccomp` bindings: the same API).

The policy is data and lives with the grader (autograder/sandbox/policy.py); this runtime only receives it:
the runner puts it, as JSON, in the fork server's environment at its start (AUTOGRADER_SECCOMP_POLICY), so
nothing of the grader is imported here. The server compiles it once (`prepare`) and never loads it; each
forked child loads it (`install`) before the student's code runs.

Some rules name the child's own pid (signals, limits and priority on itself only), which the server does
not know. libseccomp compiles the filter twice, for two placeholder pids; where the two programs differ
only in those constants, the child writes its pid there and loads the program (~1 ms). Otherwise
(another libseccomp's code generation) the child builds the filter with libseccomp itself (10-20 ms in a
torch-sized process, its copy-on-write pages). Where the bindings, libseccomp or seccomp itself are
missing, the child runs without the filter, as it did before where the machine had no seccomp; the
sandbox's description says so.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import sys
import tempfile

POLICY_ENV = "AUTOGRADER_SECCOMP_POLICY"
SELF = "self"
# Two pids no process has (pid_max is at most 2**22): the program compiled for each tells where the pid goes.
_PLACEHOLDERS = (0x7FFFFFF1, 0x7FFFFFE3)
_INSTRUCTION = struct.Struct("=HBBI")   # struct sock_filter: code, jt, jf, k
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1


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


def _numbers(lib, policy: dict) -> dict:
    """The policy's calls this machine has, by name (a call unknown here, or another architecture's, stays denied)."""
    known = {}
    for name in set(policy.get("allow", [])) | set(policy.get("allow_if", {})) | set(policy.get("errno", {})):
        try:
            number = lib.resolve_syscall(lib.Arch.NATIVE, name)
        except Exception:
            continue
        if isinstance(number, int) and number >= 0:
            known[name] = number
    return known


def _filter(lib, policy: dict, known: dict, me: int):
    """The libseccomp filter of `policy` for a process whose pid is `me`."""
    deny = lib.ERRNO(_errno(policy.get("default_errno", "EPERM")))
    flt = lib.SyscallFilter(deny)
    flt.set_attr(lib.Attr.ACT_BADARCH, deny)   # another architecture's (or the x32 ABI's) numbers
    for name in policy.get("allow", []):
        if name in known:
            flt.add_rule(lib.ALLOW, known[name])
    for name, value in policy.get("errno", {}).items():
        if name in known:
            flt.add_rule(lib.ERRNO(_errno(value)), known[name])
    for name, alternatives in policy.get("allow_if", {}).items():
        if name in known:
            for alternative in alternatives:
                flt.add_rule(lib.ALLOW, known[name], *(_condition(lib, c, me) for c in alternative))
    return flt


def _program(flt) -> bytes:
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def _pid_slots(first: bytes, second: bytes) -> list[int] | None:
    """The offsets of the instructions holding the pid, if the two programs differ in nothing else."""
    size = _INSTRUCTION.size
    if len(first) != len(second) or not first or len(first) % size:
        return None
    slots = []
    for at in range(0, len(first), size):
        a, b = _INSTRUCTION.unpack_from(first, at), _INSTRUCTION.unpack_from(second, at)
        if a == b and a[3] not in _PLACEHOLDERS:
            continue
        if a[:3] != b[:3] or (a[3], b[3]) != _PLACEHOLDERS:
            return None
        slots.append(at)
    return slots


class Prepared:
    """What a child needs to confine itself, made in the server so that the child touches little memory (each
    page it writes is copied): the compiled program in a C buffer and where its pid goes, or (where the
    program cannot be patched) the policy to build the filter from."""

    def __init__(self, lib, policy: dict, known: dict, program: bytes | None, slots: list[int]):
        import ctypes

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self.lib, self.policy, self.known, self.slots = lib, policy, known, slots
        self.ctypes = ctypes
        from .libc import LIBC
        self.prctl, self.syscall = LIBC.prctl, LIBC.syscall
        self.seccomp_nr = known.get("seccomp", -1)
        self.program = self.fprog = None
        if program is not None:
            self.program = ctypes.create_string_buffer(program, len(program))
            self.fprog = SockFprog(len(program) // _INSTRUCTION.size, ctypes.addressof(self.program))


def prepare(policy_json: str | None) -> Prepared | str:
    """In the fork server, once: the policy compiled for its children, or why there is no filter."""
    if not policy_json:
        return "no seccomp policy was given"
    if not sys.platform.startswith("linux"):
        return "no seccomp on this system"
    lib = _bindings()
    if lib is None:
        return "libseccomp cannot be loaded"
    try:
        policy = json.loads(policy_json)
        known = _numbers(lib, policy)
        first, second = (_program(_filter(lib, policy, known, pid)) for pid in _PLACEHOLDERS)
        slots = _pid_slots(first, second)
        return Prepared(lib, policy, known, first if slots is not None else None, slots or [])
    except Exception as exc:  # a malformed policy or a libseccomp error: no filter, as on a machine without one
        return f"the seccomp filter cannot be built ({exc!r})"[:300]


def _load(prepared: Prepared) -> str:
    ctypes = prepared.ctypes
    if prepared.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"no_new_privs refused (errno {ctypes.get_errno()})"
    # Every thread of the process (TSYNC), where the kernel has seccomp(2); else this thread, as prctl does.
    fprog = ctypes.byref(prepared.fprog)
    if prepared.seccomp_nr >= 0 and prepared.syscall(prepared.seccomp_nr, SECCOMP_SET_MODE_FILTER,
                                                     SECCOMP_FILTER_FLAG_TSYNC, fprog) == 0:
        return ""
    if prepared.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0) == 0:
        return ""
    return f"seccomp refused the filter (errno {ctypes.get_errno()})"


def install(prepared: Prepared | str) -> str:
    """In the child, before the student's code runs: the filter, for this process (and any thread it has).
    '' when installed, else why not (the child then runs without it)."""
    if not isinstance(prepared, Prepared):
        return prepared
    me = os.getpid()
    try:
        if prepared.program is not None:
            for at in prepared.slots:
                struct.pack_into("=I", prepared.program, at + 4, me)   # the k field (this child's copy)
            return _load(prepared)
        flt = _filter(prepared.lib, prepared.policy, prepared.known, me)
        try:
            flt.set_attr(prepared.lib.Attr.CTL_TSYNC, 1)
        except OSError:  # an old kernel or libseccomp: the child has no other thread yet anyway
            pass
        flt.load()
    except Exception as exc:
        return f"the seccomp filter cannot be installed ({exc!r})"[:300]
    return ""
