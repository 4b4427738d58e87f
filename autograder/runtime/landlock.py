"""Landlock: which files the student's process can reach, where the sandbox has no filesystem view of its own.

Under the dedicated-user mechanism the child shares the machine's filesystem. Permissions keep it out of the
grader's files, but the world-writable places (/tmp, /var/tmp, /dev/shm) are shared by every sandbox graded at
the same time: one child could leave a file (or a file's name) there for another submission's child to read
while both run. Landlock (Linux >= 5.13, unprivileged) closes them: after `restrict`, this process and its
threads can read only the Python runtime, the system's libraries and configuration, /proc, /sys and a few
device files, read its submission and runtime copy, and write only in its scratch directory. Everything else,
the shared places included, fails with EACCES (listing and creating alike).

The rules are the kernel's (an access right a rule does not grant is refused below every path); this module
only opens each path and hands it to the three system calls, through ctypes (no dependency).
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys

from .libc import LIBC as _libc

ENV = "AUTOGRADER_LANDLOCK"     # "1" in the fork server's environment: every child restricts itself
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446      # the same numbers on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1     # ABI 6: this process's own domain only

READ = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV   # the rights a rule on a file may hold
# The system's own trees the interpreter and its libraries read; the runtime's paths are added to them.
SYSTEM_TREES = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def abi() -> int:
    """The Landlock ABI this kernel offers (0: none, or the system calls are refused, e.g. by a container's
    seccomp profile)."""
    if _libc is None or not sys.platform.startswith("linux"):
        return 0
    version = _libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(version))


def readable_trees() -> list[str]:
    """What the interpreter reads: the system's trees, its prefixes and every directory on its path."""
    found = list(SYSTEM_TREES) + [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    found += [p for p in sys.path if p]
    return list(dict.fromkeys(os.path.realpath(p) for p in found))


_PLAN: tuple[int, list[str]] | None = None   # (abi(), readable_trees()), from `prepare`


def prepare() -> None:
    """Once, in the fork server (after its import path is final): the ABI and the interpreter's trees, so that
    each child only opens its rules' paths and makes the three system calls."""
    global _PLAN
    _PLAN = (abi(), readable_trees())


def restrict(read: list[str], write: list[str]) -> None:
    """Allow only reading below `read` (and the interpreter's `readable_trees()`, the device files) and
    everything below `write`, for this process and whatever it starts. Raises OSError when Landlock is
    unavailable or a system call fails: the caller must not run the student's code unconfined."""
    version, trees = _PLAN if _PLAN is not None else (abi(), readable_trees())
    if version < 1:
        raise OSError("Landlock is not available")
    handled = _RIGHTS_BY_ABI.get(version, _RIGHTS_BY_ABI[5])
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0
    attr = struct.pack("=QQQ", handled, 0, scoped) if version >= 6 else struct.pack("=Q", handled)
    ruleset = _libc.syscall(_CREATE_RULESET, ctypes.c_char_p(attr), ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        rules = [(p, READ) for p in trees + list(read)] + [(p, handled) for p in write]
        rules += [(p, READ_FILE | WRITE_FILE | TRUNCATE) for p in DEVICES]
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a tree this machine does not have
            try:
                if not os.path.isdir(path):
                    rights &= FILE_RIGHTS
                beneath = struct.pack("=Qi", rights & handled, fd)
                if _libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                 ctypes.c_char_p(beneath), ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "no_new_privs could not be set")
        if _libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
