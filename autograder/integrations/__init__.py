"""Other systems the grader runs inside: batches (process pool or Dask), Gradescope, GitHub Classroom,
a notebook's `check()`, and nbgrader."""
