"""nbgrader, split by the process each part runs in: `kernel` (the grade-cell API, in the student's notebook
kernel), `preprocessor` (grading outside the kernel, inside the instructor's `nbgrader autograde`) and
`course` (the instructor's tools and commands); `common` is what both sides use; `tools` is the old import
path of released notebooks and course configs."""
