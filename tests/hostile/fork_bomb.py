def attack(gate, dout):
    """Fork until the system says no; every copy sleeps, named TARGETS['tag'] so the test can look for it."""
    import ctypes
    import os
    import time
    try:
        libc = ctypes.CDLL(None)
    except BaseException:  # the guard refuses ctypes: name the copies another way
        libc = None
    tag = TARGETS["tag"].encode()
    forked = 0
    for _ in range(2000):  # a bound for this test machine's sake: the limit must stop it well before
        try:
            pid = os.fork()
        except BaseException:  # OSError (seccomp, limits), or the guard's refusal
            break
        if pid == 0:
            if libc is not None:
                libc.prctl(15, tag, 0, 0, 0)  # PR_SET_NAME
            try:
                os.setsid()
                time.sleep(3600)
            finally:
                os._exit(0)
        forked += 1
    print(f"ATTACK-RAN forked={forked}")
    raise RuntimeError("forked")
