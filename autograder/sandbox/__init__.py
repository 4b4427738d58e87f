"""The grader's side of the trust boundary: choosing an isolation mechanism, staging the submission and
the runtime, talking to the fork server, and validating what comes back."""
