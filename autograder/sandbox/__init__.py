"""The grader's side of the trust boundary: choosing an isolation mechanism, staging the submission and
the runtime, talking to the fork server, and validating what comes back."""
from autograder.sandbox.runner import (SKIP_DIRS, IsolationMissing, Mechanism, Runner, RunResult,  # noqa: F401
                                       choose_mechanism, credit_runner, sandbox_user, verify_user)

__all__ = ["Runner", "RunResult", "IsolationMissing", "credit_runner", "choose_mechanism", "Mechanism",
           "sandbox_user", "verify_user", "SKIP_DIRS"]
