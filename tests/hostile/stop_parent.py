def attack(gate, dout):
    """Stop the fork server (SIGSTOP): a grader without deadlines waits forever."""
    import os
    import signal
    print("ATTACK-RAN stopping", os.getppid())
    os.kill(os.getppid(), signal.SIGSTOP)
    raise RuntimeError("stopped my parent")
