def attack(gate, dout):
    """Reach into the fork server's memory (/proc/<ppid>/mem, ptrace) to disarm it for later students."""
    import ctypes
    import os
    got = []
    for pid in (os.getppid(), 1):
        for mode in ("r+b", "rb"):
            try:
                with open(f"/proc/{pid}/mem", mode, 0) as mem:
                    got.append(f"MEM-OPEN {pid} {mode}")
            except BaseException:  # OSError, or the guard's refusal of /proc/*/mem
                pass
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(16, os.getppid(), None, None) == 0:  # PTRACE_ATTACH
            got.append("PTRACE-OK")
    except BaseException:  # the guard refuses ctypes; seccomp refuses ptrace anyway
        pass
    print(f"ATTACK-RAN got={got}")
    raise RuntimeError("no memory reached")
