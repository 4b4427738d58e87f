"""The registry of assignments: each module declares its exercises as data (`EXERCISES`).

An assignment is graded when its files are in the submission (or when asked for by name).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from autograder.core.exercise import Exercise

NAMES = ("micrograd", "graphs", "backprop_ninja", "micrograd_exercises")


def exercises(name: str) -> list[Exercise]:
    if name not in NAMES:
        raise KeyError(f"unknown assignment {name!r} (known: {', '.join(NAMES)})")
    return list(importlib.import_module(f"{__name__}.{name}").EXERCISES)


def all_exercises() -> dict[str, list[Exercise]]:
    return {name: exercises(name) for name in NAMES}


def detect(submission: Path) -> list[str]:
    """The assignments whose files are present in a submission directory."""
    found = []
    for name in NAMES:
        exs = exercises(name)
        if any((submission / f).is_file() for ex in exs for f in ex.required_files):
            found.append(name)
    return found
