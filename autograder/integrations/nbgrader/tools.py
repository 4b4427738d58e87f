"""The old home of the nbgrader tools, kept as an import path: notebooks released before the split run
`from autograder.integrations.nbgrader.tools import start_notebook, notebook_grade` in the student's
kernel; course configs import `generate_assignment_preprocessors` and scripts the course tools from here.

The code lives by the process it runs in: `kernel` (the grade-cell API, in the student's kernel) and
`course` (the instructor's tools and commands). `python -m autograder.integrations.nbgrader.tools` runs
`course`'s commands.
"""
from __future__ import annotations

import sys

from autograder.integrations.nbgrader.kernel import notebook_grade, start_notebook  # noqa: F401


def __getattr__(name):
    """Any other name of the old module, from where it lives now (loaded on first use: a kernel that only
    grades cells never loads the instructor's side)."""
    if name.startswith("__"):  # (the import system's questions, e.g. __path__, need no course)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from autograder.integrations.nbgrader import course
    if not hasattr(course, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(course, name)


def main(argv: list[str] | None = None) -> int:
    from autograder.integrations.nbgrader.course import main as course_main
    return course_main(argv)


if __name__ == "__main__":
    sys.exit(main())
