def attack(gate, dout):
    """Read what the machine's shared places hold (a file planted by someone else, the names there) and leave a
    file in each for a submission graded at the same time to find."""
    import os
    found, left = [], []
    for place in TARGETS["places"]:
        try:
            names = os.listdir(place)
            found += [f"{place}/{n}" for n in names if TARGETS["tag"] in n]
        except OSError:
            pass
        try:
            with open(os.path.join(place, TARGETS["tag"] + "-planted")) as f:
                found.append("READ " + f.read().strip())
        except OSError:
            pass
        try:
            path = os.path.join(place, TARGETS["tag"] + "-from-child")
            with open(path, "w") as f:
                f.write("left by a child\n")
            os.chmod(path, 0o644)
            left.append(path)
        except OSError:
            pass
    print(f"ATTACK-RAN found={found} left={left}")
    raise RuntimeError("nothing found")
