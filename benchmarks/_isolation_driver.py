"""The driver of benchmarks/isolation.py (run in the student's process): call the trivial `f`."""


def call(module, inputs):
    return {"out": module.f()}
