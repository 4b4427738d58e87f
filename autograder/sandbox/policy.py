"""The seccomp policy of the student's process, as data: an allowlist, default deny.

Every child of the fork server installs it before the student's code is imported (autograder/runtime/
seccomp.py builds the filter from this dict with libseccomp). A system call in no list fails with EPERM;
one listed under `allow_if` is allowed only when one of its alternatives holds (every condition of it);
`errno` gives some calls another error (clone3: ENOSYS, so the C library falls back to clone, which the
policy can inspect). Where libseccomp cannot be loaded the child runs without the filter, as it did where
the machine has no seccomp, and the sandbox's description says so (`seccomp_problem`).

The list starts from Docker's default profile (github.com/moby/profiles, seccomp/default.json: the calls
it allows without conditions or capabilities) and removes what a student's process must not do: start a
process or another program, signal or inspect any process but itself, use a network socket, change
another process's limits or scheduling, or make anything the kernel keeps after it ends (System V IPC,
POSIX message queues). What Docker grants only with a capability (mount, unshare, setns, bpf,
perf_event_open, ptrace, keyctl, kexec, reboot...) or only under conditions (personality) is not listed,
so it is denied like every call nobody listed (io_uring, userfaultfd, add_key...).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import json

POLICY_ENV = "AUTOGRADER_SECCOMP_POLICY"   # how the runner hands the policy to the fork server (its startup)

CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: no namespace, even in a thread.
CLONE_NAMESPACES = 0x7E020000
AF_UNIX = 1
PRIO_PROCESS, IOPRIO_WHO_PROCESS = 0, 1
SELF = "self"   # an argument value: the pid of the process installing the filter (the child itself)


def _is(arg: int, value) -> dict:
    return {"arg": arg, "op": "eq", "value": value}


# Calls on a pid: only the child's own (0 means itself too).
_ON_ITSELF = [[_is(0, 0)], [_is(0, SELF)]]

SECCOMP_POLICY = {
    "default_errno": "EPERM",
    "allow": [
    'access', 'adjtimex', 'alarm', 'brk', 'cachestat', 'capget', 'capset', 'chdir',
    'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64',
    'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64', 'close', 'close_range',
    'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create', 'epoll_create1', 'epoll_ctl',
    'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2',
    'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark',
    'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64',
    'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fremovexattr', 'fsetxattr', 'fstat', 'fstat64',
    'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64', 'futex', 'futex_requeue',
    'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake', 'futimesat', 'getcpu', 'getcwd', 'getdents',
    'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups',
    'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority',
    'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'get_robust_list',
    'getrusage', 'getsid', 'getsockname', 'getsockopt', 'get_thread_area', 'gettid', 'gettimeofday', 'getuid',
    'getuid32', 'getxattr', 'getxattrat', 'inotify_add_watch', 'inotify_init', 'inotify_init1',
    'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy', 'io_getevents', 'io_pgetevents',
    'io_pgetevents_time64', 'ioprio_get', 'io_setup', 'io_submit', 'landlock_add_rule',
    'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat',
    'listmount', 'listxattr', 'listxattrat', 'llistxattr', '_llseek', 'lremovexattr', 'lseek',
    'lsetxattr', 'lstat', 'lstat64', 'madvise', 'map_shadow_stack', 'membarrier', 'memfd_create',
    'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap',
    'mmap2', 'mprotect', 'mremap', 'mseal', 'msync', 'munlock', 'munlockall', 'munmap', 'name_to_handle_at',
    'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause', 'pipe', 'pipe2',
    'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv',
    'preadv2', 'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead',
    'readlink', 'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg',
    'remap_file_pages', 'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall',
    'riscv_hwprobe', 'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigreturn',
    'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'sched_getaffinity', 'sched_getattr',
    'sched_getparam', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_getscheduler',
    'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_yield', 'seccomp', 'select', 'send',
    'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto', 'setfsgid', 'setfsgid32', 'setfsuid',
    'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer', 'setpgid', 'setregid',
    'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit',
    'set_robust_list', 'setsid', 'setsockopt', 'set_thread_area', 'set_tid_address', 'setuid', 'setuid32',
    'setxattr', 'setxattrat', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn',
    'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx', 'symlink', 'symlinkat', 'sync',
    'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'time', 'timer_create', 'timer_delete', 'timer_getoverrun',
    'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64', 'timerfd_create', 'timerfd_gettime',
    'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times', 'truncate', 'truncate64',
    'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'uretprobe', 'utime', 'utimensat', 'utimensat_time64',
    'utimes', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev',
        # Docker's per-architecture additions: the TLS and cache calls the C library makes there.
        "arch_prctl", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
        "set_tls",
    ],
    "allow_if": {
        # Threads yes (torch's, faulthandler's watchdog), new processes no: a fork bomb is impossible rather
        # than limited, and no process outlives the child.
        "clone": [[{"arg": 0, "op": "masked_eq", "mask": CLONE_THREAD | CLONE_NAMESPACES, "value": CLONE_THREAD}]],
        # No network, even where the mechanism has no network namespace: a hidden case's inputs cannot be
        # sent home. AF_UNIX only, and with no bind/connect (see DENIED_FROM_DOCKER): a pair or nothing.
        "socket": [[_is(0, AF_UNIX)]],
        "socketpair": [[_is(0, AF_UNIX)]],
        # Signals: to itself only (kill(0, ...): its own process group, which it leads alone), never to the
        # fork server, the grader or another grading under the same uid.
        "kill": _ON_ITSELF,
        "tkill": [[_is(0, SELF)]],
        "tgkill": [[_is(0, SELF)]],
        "rt_sigqueueinfo": [[_is(0, SELF)]],
        "rt_tgsigqueueinfo": [[_is(0, SELF)]],
        # Limits, priority and scheduling: its own only (setrlimit is prlimit64 on pid 0; the runtime sets each
        # case's CPU allowance with it). Another process's would outlive the child or reach its server.
        "prlimit64": _ON_ITSELF,
        "sched_setaffinity": _ON_ITSELF,
        "sched_setscheduler": _ON_ITSELF,
        "sched_setparam": _ON_ITSELF,
        "sched_setattr": _ON_ITSELF,
        "setpriority": [[_is(0, PRIO_PROCESS), _is(1, 0)], [_is(0, PRIO_PROCESS), _is(1, SELF)]],
        "ioprio_set": [[_is(0, IOPRIO_WHO_PROCESS), _is(1, 0)], [_is(0, IOPRIO_WHO_PROCESS), _is(1, SELF)]],
    },
    "errno": {"clone3": "ENOSYS"},
}

# What the policy denies that Docker's default profile allows, by the reason, for the reader and the tests.
DENIED_FROM_DOCKER = {
    "new processes and programs": ["fork", "vfork", "execve", "execveat"],
    "other processes": ["pidfd_open", "pidfd_send_signal", "process_mrelease"],
    "sockets it cannot be checked on": ["socketcall"],
    # Where the mechanism has no network namespace (the dedicated user), abstract and filesystem unix sockets
    # are the machine's: a child serving on one reached a concurrent submission's child. Nothing a solution
    # does needs a socket it did not make as a pair (the C library falls back where nscd is refused).
    "sockets another sandbox could reach": ["bind", "listen", "accept", "accept4", "connect"],
    "System V IPC (kept by the kernel after the child)": [
        "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget"],
    "POSIX message queues (kept by the kernel after the child)": [
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64", "mq_unlink"],
}


def policy_json() -> str:
    """The policy as the fork server receives it."""
    return json.dumps(SECCOMP_POLICY, separators=(",", ":"))


@functools.lru_cache(maxsize=None)
def seccomp_problem() -> str:
    """'' when the fork server's children can install the policy here, else why not (checked cheaply in the
    grader: the bindings are importable and the system's libseccomp loads; the runtime checks again)."""
    import sys
    if not sys.platform.startswith("linux"):
        return "no seccomp on this system"
    if not any(importlib.util.find_spec(name) for name in ("pyseccomp", "seccomp")):
        return "no libseccomp bindings (pip install pyseccomp)"
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "libseccomp is not installed (apt-get install libseccomp2)"
    return ""
