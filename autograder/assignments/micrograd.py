"""micrograd assignment: being built (see issues)."""
EXERCISES = []
