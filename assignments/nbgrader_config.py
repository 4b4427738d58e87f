"""nbgrader configuration of the backprop-lab course (this directory is the course root).

The source notebooks in source/<assignment>/ are generated from reference/ by `make templates`:
edit the reference modules, not the notebooks.
"""
from autograder.nbgrader_tools import generate_assignment_preprocessors

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "backprop-lab"

# Release notebooks: `### BEGIN SOLUTION stub: <code>` regions become `<code>` (e.g. `dlogprobs = None`),
# so each step of a long function can be done and graded on its own; other regions the default stub.
c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A grade cell stops an exercise's cases after its first timeout (the exercise's time limit per case,
# 20-30 s, or AUTOGRADER_NOTEBOOK_TIME_LIMIT), so an infinite loop costs one time limit. This bounds
# everything else, e.g. an infinite loop at the top level of a student's cell (nbgrader interrupts the
# cell and goes on; the grader leaves the interrupted cell out of the module).
c.Execute.timeout = 120
