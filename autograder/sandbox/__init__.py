"""The grader's side of the trust boundary, one concern per module:
- mechanisms: choosing the isolation mechanism (bubblewrap, a dedicated user, none) and preparing it;
- staging: the private directory the sandbox sees (the runtime, the drivers, the submission's copy);
- client: `Runner`, the fork-server client (pipes, deadlines), and `credit_runner`;
- replies: `RunResult` and the validation of everything that comes back;
- policy: the seccomp allowlist every child of the fork server installs (data, default deny).
"""
from autograder.sandbox.client import Runner, credit_runner
from autograder.sandbox.mechanisms import IsolationMissing, Mechanism, choose_mechanism, sandbox_user, verify_user
from autograder.sandbox.replies import RunResult
from autograder.sandbox.staging import SKIP_DIRS

__all__ = ["Runner", "RunResult", "IsolationMissing", "credit_runner", "choose_mechanism", "Mechanism",
           "sandbox_user", "verify_user", "SKIP_DIRS"]
