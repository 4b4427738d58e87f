def attack(gate, dout):
    """Look for the grader (truths, judges, cases) in this process, then try to import it."""
    import importlib
    import sys
    # The runtime (autograder/runtime/, staged under the same name) is all of the grader a child may hold.
    held = sorted(m for m in sys.modules if m.startswith(("autograder", "reference", "tests"))
                  and m not in ("autograder", "autograder.runtime") and not m.startswith("autograder.runtime."))
    imported = []
    for name in ("autograder.assignments", "autograder.assignments.graphs", "autograder.core.compare",
                 "autograder.core.pipeline", "autograder.core.truth", "autograder.core.exercise", "autograder.sandbox.client",
                 "reference", "reference.graphs", "graphs_reference"):
        try:
            importlib.import_module(name)
            imported.append(name)
        except BaseException:
            pass
    print(f"ATTACK-RAN held={held} imported={imported}")
    raise RuntimeError("nothing of the grader here")
