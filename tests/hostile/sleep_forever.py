def attack(gate, dout):
    """Sleep forever on the first public case (once: the test must not take minutes)."""
    import time
    print("ATTACK-RAN sleeping")
    if float(dout) == TARGETS["sleep_when"]:
        time.sleep(10**6)
    raise RuntimeError("woke up")
