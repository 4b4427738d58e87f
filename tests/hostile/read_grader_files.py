def attack(gate, dout):
    """Read the reference solutions and the grader's source by every road: the package's __file__,
    PYTHONPATH, sys.path, known absolute paths, a search of the filesystem; and another submission."""
    import glob
    import os
    import sys
    candidates = list(TARGETS["paths"])
    try:
        import autograder
        root = os.path.dirname(os.path.dirname(os.path.abspath(autograder.__file__)))
        candidates += [os.path.join(root, "reference", "graphs.py"), os.path.join(root, "autograder", "compare.py")]
    except BaseException:
        pass
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) + sys.path:
        if entry:
            candidates += [os.path.join(entry, "reference", "graphs.py"), os.path.join(entry, "..", "reference", "graphs.py")]
    for pattern in ("/*/reference/graphs.py", "/*/*/reference/graphs.py", "/*/*/*/reference/graphs.py",
                    "/*/*/*/*/reference/graphs.py", "/*/*/autograder/core/compare.py", "/*/*/*/autograder/core/compare.py"):
        try:
            candidates += glob.glob(pattern)
        except OSError:
            pass
    read = []
    for path in candidates:
        try:
            with open(path) as f:
                text = f.read()
            read.append(path)
            print("READ-OK", path, text[:3000])
        except (OSError, UnicodeError):
            pass
    print(f"ATTACK-RAN tried={len(candidates)} read={len(read)}")
    raise RuntimeError("nothing read")
