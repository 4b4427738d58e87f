"""Assignments are found by registration (entry points of `backprop_lab.assignments`), in the course's order."""
import subprocess
import sys

import autograder.assignments as assignments
from autograder.assignments import NAMES, course_position, exercises, registered


def test_the_course_order_comes_from_the_packages():
    positions = [course_position(package) for package in registered().values()]
    assert positions == sorted(positions) and all(p != float("inf") for p in positions)
    assert NAMES[0] == "micrograd"  # where the course starts


def test_every_registered_assignment_declares_its_exercises_under_its_name():
    for name in NAMES:
        exs = exercises(name)
        assert exs and all(ex.assignment == name for ex in exs), name


def test_listing_the_assignments_imports_none_of_them():
    code = ("import sys; from autograder.assignments import NAMES; assert NAMES; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('autograder.assignments.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_checkout_without_installed_entry_points_reads_pyproject(monkeypatch):
    import importlib.metadata
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    assignments.registered.cache_clear()
    try:
        assert tuple(registered()) == NAMES
    finally:
        assignments.registered.cache_clear()


def test_an_unknown_assignment_is_named_with_the_known_ones():
    try:
        exercises("graph")
    except KeyError as exc:
        assert "graph" in str(exc) and "graphs" in str(exc)
    else:
        raise AssertionError("no error for an unknown assignment")
