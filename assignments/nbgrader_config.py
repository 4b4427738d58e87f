"""nbgrader configuration of the backprop-lab course (this directory is the course root).

The source notebooks in source/<assignment>/ are generated from reference/ by `make templates`:
edit the reference modules, not the notebooks.
"""
from autograder.nbgrader_preprocessor import autograde_preprocessors, take_secret
from autograder.nbgrader_tools import generate_assignment_preprocessors

# The kernels nbgrader starts run the students' code with this process's environment: the grading secret
# (hidden cases derive from it) leaves the environment now, before any kernel starts.
take_secret()

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "backprop-lab"

# Release notebooks: `### BEGIN SOLUTION stub: <code>` regions become `<code>` (e.g. `dlogprobs = None`),
# so each step of a long function can be done and graded on its own; other regions the default stub.
c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Grading outside the kernel: after nbgrader has run the notebook (its outputs are the feedback), our
# preprocessor grades the notebook's code in the sandboxed grader and writes every grade cell's table
# and score, which is what the gradebook records. Nothing a cell does in the kernel changes a score.
# It refuses without isolation or without AUTOGRADER_SECRET; the operator may say otherwise with
# --GradeOutsideKernel.unsandboxed=True / --GradeOutsideKernel.public_only=True (the same choices as
# `autograder grade --unsandboxed / --public-only`).
c.Autograde.autograde_preprocessors = autograde_preprocessors()

# The kernel's run of the notebook is only for the feedback's outputs: a cell stuck in a loop is
# interrupted after this many seconds and the rest of the notebook still runs.
c.Execute.timeout = 120
