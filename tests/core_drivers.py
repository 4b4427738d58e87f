"""Drivers for the core tests: run in the student's process like an assignment's drivers."""


def call(module, inputs):
    """Call the student's `f(**args)` and return its result as {"out": ...}."""
    return {"out": module.f(**inputs.get("args", {}))}


def call_dict(module, inputs):
    return module.f(**inputs.get("args", {}))
