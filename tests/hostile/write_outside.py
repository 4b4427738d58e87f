def attack(gate, dout):
    """Write into the grader's source, the reference, the venv, another submission, the results, its own copy."""
    import os
    wrote = []
    targets = list(TARGETS["write"]) + [os.path.abspath(__file__)]
    for path in targets:
        for mode, what in (("a", "\nraise SystemExit('tampered')\n"), ("w", "tampered = True\n")):
            try:
                with open(path, mode) as f:
                    f.write(what)
                wrote.append(path)
                break
            except OSError:
                pass
    for directory in TARGETS["dirs"] + [os.path.dirname(os.path.abspath(__file__))]:
        try:
            with open(os.path.join(directory, "pwned.pth"), "w") as f:
                f.write("import os\n")
            wrote.append(directory)
        except OSError:
            pass
    print(f"ATTACK-RAN wrote={wrote}")
    raise RuntimeError("nothing written")
