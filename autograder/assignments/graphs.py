"""graphs assignment: being built (see issues)."""
EXERCISES = []
