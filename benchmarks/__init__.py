"""`make bench`: speed and memory figures, each measured in one run (never a timed test)."""
