"""What enters the student's process, and nothing else: the fork server, the wire format, the verdict
names and the guard. `sandbox.staging` copies exactly these files into the sandbox; nothing here imports
the rest of the grader."""
