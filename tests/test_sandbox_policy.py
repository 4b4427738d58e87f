"""The seccomp policy of the student's process (autograder/sandbox/policy.py, installed by
autograder/runtime/seccomp.py): default deny; every class of call a student's process must not make fails
with EPERM in a graded child, under every isolation mechanism this machine has; threads, torch and the
four assignments' references are unharmed.

The probes are raw system calls (ctypes' `syscall`, numbers resolved by libseccomp for this machine), made
from a submission's module through a driver without the autograd guard (whose audit hook refuses ctypes:
the filter is the line below it, tested alone here). Each prints `PROBE [name, errno]`; the tests read
the graded result's output.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_isolation import mechanism, user_mechanism  # noqa: F401  (fixtures: bwrap, and the dedicated user)

ROOT = Path(__file__).resolve().parent.parent
EPERM, ENOSYS = 1, 38

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="seccomp is Linux's"),
              pytest.mark.xdist_group("isolation")]

# name: (system call, arguments). An argument is an int, "self" / "parent" (a pid), "null" (a NULL pointer),
# "str:<text>" (a C string) or "pair" (an int[2]). Every call is harmless if it ran: invalid or no-op arguments.
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
DENIED = {
    "new processes and programs": {
        "fork": ("fork", []),
        "clone a process": ("clone", [SIGCHLD, 0, "null", "null", 0]),
        "execve": ("execve", ["str:/nonexistent-probe", "null", "null"]),
    },
    "other processes": {
        "kill the parent": ("kill", ["parent", 0]),
        "tgkill the parent": ("tgkill", ["parent", "parent", 0]),
        "ptrace": ("ptrace", [2, "self", 0, 0]),   # PTRACE_PEEKDATA
        "process_vm_readv": ("process_vm_readv", ["self", "null", 0, "null", 0, 0]),
        "pidfd_open": ("pidfd_open", ["self", 0]),
        "pidfd_getfd": ("pidfd_getfd", [-1, 0, 0]),
        "kcmp": ("kcmp", ["self", "self", 0, 0, 0]),
    },
    "namespaces and mounts": {
        "unshare": ("unshare", [CLONE_NEWUSER]),
        "setns": ("setns", [-1, 0]),
        "mount": ("mount", ["null", "null", "null", 0, "null"]),
        "umount2": ("umount2", ["str:/nonexistent-probe", 0]),
        "chroot": ("chroot", ["str:/"]),
    },
    "network sockets": {
        "socket AF_INET": ("socket", [2, 1, 0]),
        "socket AF_INET6": ("socket", [10, 2, 0]),
        "socket AF_NETLINK": ("socket", [16, 3, 0]),
        "socket AF_PACKET": ("socket", [17, 3, 0]),
        "socketpair AF_INET": ("socketpair", [2, 1, 0, "pair"]),
    },
    "sockets another sandbox could reach": {
        "connect": ("connect", [-1, "null", 0]),
        "bind": ("bind", [-1, "null", 0]),
        "listen": ("listen", [-1, 0]),
        "accept4": ("accept4", [-1, "null", "null", 0]),
    },
    "keyrings": {
        "keyctl": ("keyctl", [0, -3, 0]),   # KEYCTL_GET_KEYRING_ID of the session keyring, without creating it
        "add_key": ("add_key", ["null", "null", "null", 0, 0]),
        "request_key": ("request_key", ["null", "null", "null", 0]),
    },
    "bpf, perf, io_uring, userfaultfd": {
        "bpf": ("bpf", [0, "null", 0]),
        "perf_event_open": ("perf_event_open", ["null", 0, -1, -1, 0]),
        "io_uring_setup": ("io_uring_setup", [1, "null"]),
        "userfaultfd": ("userfaultfd", [0]),
    },
    "personality": {
        "personality": ("personality", [0xFFFFFFFF]),   # a query
    },
    "another process's limits and scheduling": {
        "prlimit64 of the parent (even reading)": ("prlimit64", ["parent", 7, "null", "null"]),
        "setpriority of the parent": ("setpriority", [0, "parent", 19]),
        "setpriority of the group": ("setpriority", [1, 0, 19]),
        "sched_setaffinity of the parent": ("sched_setaffinity", ["parent", 0, "null"]),
        "sched_setscheduler of the parent": ("sched_setscheduler", ["parent", 0, "null"]),
        "ioprio_set of the group": ("ioprio_set", [2, 0, 0]),
    },
    "System V IPC and POSIX message queues": {
        "shmget": ("shmget", [0, 4096, 0o600]),
        "semget": ("semget", [0, 1, 0o600]),
        "msgget": ("msgget", [0, 0o600]),
        "shmat": ("shmat", [-1, "null", 0]),
        "mq_open": ("mq_open", ["str:/nonexistent-probe", 0, 0, "null"]),
        "mq_unlink": ("mq_unlink", ["str:/nonexistent-probe"]),
    },
    "kexec, reboot, modules": {
        "kexec_file_load": ("kexec_file_load", [-1, -1, 0, "null", 0]),
        "kexec_load": ("kexec_load", [0, 0, "null", 0xFFFF0000]),
        "reboot": ("reboot", [0, 0, 0, "null"]),
        "init_module": ("init_module", ["null", 0, "null"]),
    },
}
# The calls a child must keep (0: it worked).
ALLOWED = {
    "kill itself": ("kill", ["self", 0]),
    "kill its group": ("kill", [0, 0]),
    "prlimit64 of itself": ("prlimit64", [0, 7, "null", "null"]),
    "socket AF_UNIX": ("socket", [1, 1, 0]),
    "socketpair AF_UNIX": ("socketpair", [1, 1, 0, "pair"]),
    "setpriority of itself": ("setpriority", [0, "self", 19]),
}
# Not in any list, and they work (or fail otherwise) without the filter: the default is deny.
UNLISTED_HARMLESS = {
    "an unassigned number": (1000, []),
    "personality (a query)": ("personality", [0xFFFFFFFF]),
    "pidfd_open of itself": ("pidfd_open", ["self", 0]),
    "process_vm_readv of nothing": ("process_vm_readv", ["self", "null", 0, "null", 0, 0]),
    "socket AF_INET": ("socket", [2, 1, 0]),
}

# The submission's module: run each probe, print its errno (0: it worked), and a thread and torch at work.
PROBE_MODULE = '''
import ctypes, json, os, threading

def _call(libc, number, args):
    c_args = []
    for a in args:
        if a == "self":
            a = os.getpid()
        elif a == "parent":
            a = os.getppid()
        if a == "null":
            c_args.append(ctypes.c_void_p(0))
        elif a == "pair":
            c_args.append(ctypes.byref((ctypes.c_int * 2)()))
        elif isinstance(a, str) and a.startswith("str:"):
            c_args.append(ctypes.c_char_p(a[4:].encode()))
        else:
            c_args.append(ctypes.c_long(a))
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *c_args)
    if result == 0 and number in NEW_PROCESS:  # it forked after all: the copy leaves at once
        os._exit(0)
    if result >= 0 and number in RETURNS_FD and result > 2:
        os.close(result)
    return ctypes.get_errno() if result == -1 else 0

def f(probes, new_process, returns_fd):
    global NEW_PROCESS, RETURNS_FD
    NEW_PROCESS, RETURNS_FD = set(new_process), set(returns_fd)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    for name, number, args in probes:
        print("PROBE " + json.dumps([name, _call(libc, number, args)]))
    found = []
    worker = threading.Thread(target=lambda: found.append(sum(range(1000))))
    worker.start()
    worker.join()
    print("PROBE " + json.dumps(["thread", 0 if found == [499500] else -1]))
    import torch
    torch.set_num_threads(1)
    x = torch.ones(64, 64, dtype=torch.float64)
    print("PROBE " + json.dumps(["torch", 0 if float(torch.tanh(x @ x).sum()) == 4096.0 else -1]))
    return 1.0
'''


def _numbers() -> dict:
    import pyseccomp
    names = {call for group in (*DENIED.values(), ALLOWED, UNLISTED_HARMLESS) for call, _ in group.values()
             if isinstance(call, str)} | {"clone3", "vfork"}
    return {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in names}


def _probes(table: dict, numbers: dict) -> list:
    out = []
    for name, (call, args) in table.items():
        number = call if isinstance(call, int) else numbers[call]
        if number >= 0:  # a call this architecture does not have is nothing to probe
            out.append([name, number, args])
    return out


def _all_probes(numbers: dict) -> list:
    probes = [p for group in DENIED.values() for p in _probes(group, numbers)] + _probes(ALLOWED, numbers)
    probes.append(["clone3", numbers["clone3"], ["null", 0]])
    if platform.machine() == "x86_64":  # the x32 ABI's getpid: another ABI's numbers are denied too
        probes.append(["x32 getpid", 0x40000000 | 39, []])
    return probes


def _read_probes(output: str) -> dict:
    found = {}
    for line in output.splitlines():
        if line.startswith("PROBE "):
            name, value = json.loads(line[len("PROBE "):])
            found[name] = value
    return found


def _module_args(numbers: dict, probes: list) -> dict:
    return {"probes": probes, "new_process": [numbers[n] for n in ("fork", "clone", "vfork") if numbers[n] >= 0],
            "returns_fd": [numbers[n] for n in ("pidfd_open", "socket", "userfaultfd", "perf_event_open",
                                                "io_uring_setup", "bpf") if numbers.get(n, -1) >= 0]}


# -- the policy as data ------------------------------------------------------------------------------------

def test_the_policy_denies_what_it_names_and_lists_no_call_twice():
    from autograder.sandbox.policy import DENIED_FROM_DOCKER, SECCOMP_POLICY
    allow, allow_if, errnos = SECCOMP_POLICY["allow"], SECCOMP_POLICY["allow_if"], SECCOMP_POLICY["errno"]
    assert SECCOMP_POLICY["default_errno"] == "EPERM" and errnos == {"clone3": "ENOSYS"}
    assert len(allow) == len(set(allow)) and not set(allow) & set(allow_if) and not set(allow) & set(errnos)
    denied = {name for names in DENIED_FROM_DOCKER.values() for name in names}
    probed = {call for group in DENIED.values() for call, _ in group.values()}
    assert not (denied | probed) & set(allow), (denied | probed) & set(allow)
    assert set(allow_if) <= probed | {"socket", "socketpair", "clone", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
                                      "rt_tgsigqueueinfo", "prlimit64", "sched_setaffinity", "sched_setscheduler",
                                      "sched_setparam", "sched_setattr", "setpriority", "ioprio_set"}


def test_a_malformed_policy_or_none_means_no_filter_never_a_crash():
    from autograder.runtime import seccomp
    assert seccomp.install(seccomp.prepare(None)) == "no seccomp policy was given"
    assert "cannot be built" in seccomp.install(seccomp.prepare('{"allow": ["read"], "default_errno": "EWHAT"}'))
    assert "cannot be built" in seccomp.install(seccomp.prepare("not json"))


def test_without_libseccomp_the_children_run_unfiltered_and_the_sandbox_says_so(monkeypatch):
    from autograder.runtime import seccomp
    from autograder.sandbox import mechanisms
    from autograder.sandbox.policy import policy_json
    monkeypatch.setattr(seccomp, "_bindings", lambda: None)
    assert seccomp.install(seccomp.prepare(policy_json())) == "libseccomp cannot be loaded"
    monkeypatch.setattr(mechanisms, "seccomp_problem", lambda: "libseccomp is not installed")
    described = mechanisms.choose_mechanism("none").description
    assert described.endswith("; no seccomp filter (libseccomp is not installed)"), described


def test_the_pid_is_written_only_where_the_two_compiled_programs_differ_by_the_placeholders():
    from autograder.runtime.seccomp import _INSTRUCTION, _PLACEHOLDERS, _pid_slots
    first, second = _PLACEHOLDERS

    def program(*instructions):
        return b"".join(_INSTRUCTION.pack(*i) for i in instructions)
    assert _pid_slots(program((0x15, 0, 1, 62), (0x15, 0, 1, first)),
                      program((0x15, 0, 1, 62), (0x15, 0, 1, second))) == [_INSTRUCTION.size]
    assert _pid_slots(program((0x15, 0, 1, 62), (0x15, 0, 1, first)),
                      program((0x15, 0, 2, 62), (0x15, 0, 1, second))) is None   # a jump differs too
    assert _pid_slots(program((0x15, 0, 1, first)), program((0x15, 1, 0, second))) is None
    assert _pid_slots(program((0x15, 0, 1, first)), program((0x15, 0, 1, first), (6, 0, 0, 0))) is None


# -- the filter alone, in a forked copy of this process -----------------------------------------------------

def _in_a_child(probes: list, numbers: dict, *, filtered: bool, prepared=None) -> dict:
    """Run the probe module's calls in a forked child of this process, with the policy's filter or without."""
    from autograder.runtime import seccomp
    from autograder.sandbox.policy import policy_json
    if filtered and prepared is None:
        prepared = seccomp.prepare(policy_json())
    namespace: dict = {}
    exec(PROBE_MODULE, namespace)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            problem = seccomp.install(prepared) if filtered else ""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            args = _module_args(numbers, probes)
            namespace.update(NEW_PROCESS=set(args["new_process"]), RETURNS_FD=set(args["returns_fd"]))
            found = {name: namespace["_call"](libc, number, a) for name, number, a in probes}
            os.write(write, json.dumps({"problem": problem, "found": found}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    reply = json.loads(data)
    assert reply["problem"] == "", reply["problem"]
    return reply["found"]


def test_the_filter_is_default_deny():
    """Calls no list names fail with EPERM under the filter, where without it they work or fail otherwise."""
    numbers = _numbers()
    probes = _probes(UNLISTED_HARMLESS, numbers)
    inside = _in_a_child(probes, numbers, filtered=True)
    outside = _in_a_child(probes, numbers, filtered=False)
    assert inside == {name: EPERM for name, _, _ in probes}, inside
    assert all(outside[name] != EPERM for name in inside), outside
    assert outside["an unassigned number"] == ENOSYS


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-in-the-server", "built-in-the-child"])
def test_the_filter_alone_refuses_each_denied_class_and_keeps_the_rest(compiled, monkeypatch):
    """Both ways a child gets the filter: the program the server compiled with the child's pid written in, and
    (where another libseccomp's program cannot be patched) the filter built by libseccomp in the child."""
    from autograder.runtime import seccomp
    from autograder.sandbox.policy import policy_json
    if not compiled:
        monkeypatch.setattr(seccomp, "_pid_slots", lambda first, second: None)
    prepared = seccomp.prepare(policy_json())
    assert (prepared.program is not None) == compiled
    numbers = _numbers()
    found = _in_a_child(_all_probes(numbers), numbers, filtered=True, prepared=prepared)
    denied = {name for group in DENIED.values() for name in group if name in found}
    assert {name: found[name] for name in denied} == {name: EPERM for name in denied}
    assert {name: found[name] for name in ALLOWED} == {name: 0 for name in ALLOWED}
    assert found["clone3"] == ENOSYS  # so the C library falls back to clone, which the filter can inspect
    assert found.get("x32 getpid", EPERM) == EPERM


# -- in a graded child, under each mechanism --------------------------------------------------------------

GRADE_ONE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from autograder.sandbox import Runner
    with Runner() as runner:
        got = runner.run(Path(sys.argv[1]), "probe", "tests.core_drivers:call", {"args": json.loads(sys.argv[2])},
                         time_limit=120, memory_mb=2048)
        print(json.dumps({"sandbox": runner.sandbox, "mechanism": runner.mechanism.name, "status": got.status,
                          "message": got.message, "output": got.output}))
""")


def test_each_denied_class_fails_with_eperm_in_a_graded_child(mechanism, tmp_path):
    numbers = _numbers()
    probes = _all_probes(numbers)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "probe.py").write_text(PROBE_MODULE)
    done = subprocess.run([mechanism.python, "-c", GRADE_ONE, str(sub), json.dumps(_module_args(numbers, probes))],
                          env={**os.environ, **mechanism.env}, capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mechanism"] == mechanism.name and "no seccomp filter" not in result["sandbox"], result
    assert result["status"] == "ok", result
    found = _read_probes(result["output"])
    for group, calls in DENIED.items():
        got = {name: found[name] for name in calls if name in found}
        assert got == {name: EPERM for name in got}, (group, got)
    assert {name: found[name] for name in ALLOWED} == {name: 0 for name in ALLOWED}
    assert found["clone3"] == ENOSYS and found.get("x32 getpid", EPERM) == EPERM
    assert found["thread"] == 0 and found["torch"] == 0  # threads and torch (one thread) work


def test_the_four_references_grade_to_full_marks(mechanism, tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run([mechanism.python, "-m", "autograder", "grade", str(ROOT / "reference"), "--format", "json",
                           "-o", str(out)], env={**os.environ, **mechanism.env, "AUTOGRADER_SECRET": "policy-test"},
                          capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {e["id"].split(".")[0] for e in result["exercises"]} == {"graphs", "micrograd", "micrograd_exercises",
                                                                    "backprop_ninja"}
    short = [(e["id"], e["score"], e["max_score"]) for e in result["exercises"] if e["score"] != e["max_score"]]
    assert not short and result["score"] == result["max_score"] > 0, short
    assert "no seccomp filter" not in result["sandbox"]
