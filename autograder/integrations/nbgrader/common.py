"""What both sides of the nbgrader integration use: a grade cell's table and points, and silence on stderr.
(The kernel's side is `kernel`; the instructor's, `preprocessor` and `course`.)"""
from __future__ import annotations

import contextlib
import io
import os
import sys


def exercise_points(exercise_result) -> float:
    """The exercise's earned fraction, as the result states it (exact until here)."""
    return float(exercise_result.fraction)


def render_table(result, out) -> None:
    """The terminal's table of `result`, as plain text into `out` (a grade cell's stdout)."""
    from rich.console import Console
    from autograder.frontends.render import to_terminal
    console = Console(file=out, width=110, color_system=None, force_terminal=False, force_jupyter=False,
                      highlight=False, soft_wrap=False)
    to_terminal(result, console)


@contextlib.contextmanager
def quiet():
    """Nothing reaches stderr: not Python's sys.stderr, not a warning, not a log record, not fd 2."""
    import logging
    import warnings
    saved_fd = None
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
        saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    previous_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous_disable)
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


