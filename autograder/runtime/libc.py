"""The C library, opened once for the runtime: prctl, madvise and the system calls Python has no wrapper for
(Landlock, seccomp). The fork server loads it; its children inherit the handle instead of opening their own."""
from __future__ import annotations

import ctypes

try:
    LIBC = ctypes.CDLL(None, use_errno=True)
    LIBC.syscall.restype = ctypes.c_long  # a system call returns a long (-1 with errno on failure)
except OSError:  # not a system with a C library ctypes can open: the callers degrade, each as it documents
    LIBC = None
