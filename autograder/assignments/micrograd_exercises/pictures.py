"""micrograd_exercises, what the HTML report draws: heatmaps of the true gradient and of |yours - true| in
units of the exercise's tolerance, where an answer is more than one number.

The report calls the same three functions of every assignment's `pictures`: `exercise_pictures` (under an
exercise's table), `gather` (anything run after grading) and `section` (its own part of the page).
"""
from __future__ import annotations

from autograder.frontends.report import heatmaps


def exercise_pictures(exercise, kept: list, tolerance) -> str:
    return heatmaps(exercise, kept[0], tolerance)


def gather(submission, runner, settings, status) -> None:
    return None  # nothing to run after grading


def section(gathered) -> str:
    return ""
