"""nbgrader configuration of the backprop-lab course (this directory is the course root).

The source notebooks in source/<assignment>/ are generated from reference/ by `make templates`:
edit the reference modules, not the notebooks.
"""
from autograder.integrations.nbgrader.preprocessor import autograde_preprocessors, take_secret
from autograder.integrations.nbgrader.tools import generate_assignment_preprocessors

# The kernels nbgrader starts run the students' code with this process's environment: the grading secret
# (hidden cases derive from it) leaves the environment now, before any kernel starts.
take_secret()

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "backprop-lab"

# Release notebooks: `### BEGIN SOLUTION stub: <code>` regions become `<code>` (e.g. `dlogprobs = None`),
# so each step of a long function can be done and graded on its own; other regions the default stub.
c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Grading outside the kernel: our preprocessor grades the notebook's code in the sandboxed grader and
# writes every grade cell's table and score, which is what the gradebook records. No Jupyter kernel
# runs the student's cells (it would see the course and the network, and it cost seconds per notebook):
# the feedback shows the code and every grade cell's table. autograde_preprocessors(run_kernel=True)
# runs the notebook in a kernel too (in bubblewrap where it works), for its outputs in the feedback.
# It refuses without isolation or without AUTOGRADER_SECRET; the operator may say otherwise with
# --GradeOutsideKernel.unsandboxed=True / --GradeOutsideKernel.public_only=True (the same choices as
# `autograder grade --unsandboxed / --public-only`).
c.Autograde.autograde_preprocessors = autograde_preprocessors()

# A deleted grade cell is put back (with a line saying so) and graded like the others, so the gradebook
# and `autograder grade` agree; both say which grade cells were deleted or edited.
c.OverwriteCells.add_missing_cells = True

# Used only with run_kernel=True: a cell stuck in a loop is interrupted after this many seconds.
c.Execute.timeout = 120
