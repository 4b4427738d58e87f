"""What is generated from the one source, `reference/` (DESIGN.md, decision 2): the student templates, the
nbgrader source notebooks and the student notebooks (`make templates`)."""
