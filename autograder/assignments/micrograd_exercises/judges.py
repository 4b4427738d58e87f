"""micrograd_exercises, grader side: the judges, each called with its exercise's tolerance (declared in
`__init__`)."""
from __future__ import annotations

import torch

from autograder.core.compare import APPROX, WRONG, Comparison, compare
from autograder.core.diagnose import close
from autograder.core.exercise import Case, takes_tolerance
from autograder.assignments.micrograd.judges import judge as micrograd_judge


HIDDEN_FAILURES = {"error": "raised an exception (details withheld for hidden cases)",
                   "timeout": "did not finish in time (an endless loop?)",
                   "wrong": "returned something that is not a number (details withheld for hidden cases)"}


@takes_tolerance
def judge_numbers(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
    """Every number against autograd's (as the notebook's check, at scale 1); a part that failed in the
    student's process keeps its one-line reason (a closed vocabulary on hidden cases)."""
    results = []
    for name, expected in truth.items():
        got = outputs.get(name) if isinstance(outputs, dict) else None
        if isinstance(got, dict) and "failure" in got:
            if case.hidden:  # a closed vocabulary: nothing the student's process chose (names, lines)
                kind = got.get("failure") if got.get("failure") in HIDDEN_FAILURES else "error"
                got = {"failure": kind, "message": HIDDEN_FAILURES[kind], "short": HIDDEN_FAILURES[kind]}
            results.extend(micrograd_judge(case, {name: got}, {name: expected}, tolerance=tolerance))
        else:
            results.append(compare(name, got, expected, tolerance=tolerance, scale=1.0))
    return results


def judge_lecture_code(what: str):
    """softmax / nll: globally against PyTorch; where wrong, the student's answer against the notebook's code
    run on the student's own Value (`_lecture`). Informative only where that differs from the truth (the
    operations are wrong): then an answer equal to it is right code on a wrong engine."""
    @takes_tolerance
    def judge(case: Case, outputs: dict, truth: dict, *, tolerance) -> list[Comparison]:
        results = judge_numbers(case, outputs, truth, tolerance=tolerance)
        lecture = outputs.get("_lecture") if isinstance(outputs, dict) else None
        if not isinstance(lecture, dict):
            return results
        mine = {"probs": lecture.get("data"), "loss": (lecture.get("data") or [None])[0],
                "dlogits": lecture.get("grad")}
        for c in results:
            if c.passed or c.verdict != WRONG:
                continue
            try:
                ref = torch.as_tensor(mine[c.name], dtype=torch.float64).reshape(truth[c.name].shape)
            except Exception:  # noqa: malformed parts from the student's process cost the local verdict only
                continue
            informative = not close(ref, truth[c.name], tolerance)
            if informative and close(outputs.get(c.name), ref, tolerance):
                c.local_verdict = APPROX
                c.message = f"correct {what}; depends on the Value operations, which are wrong (the Value " \
                            f"exercise names them)"
            else:
                c.local_verdict = WRONG
        return results
    return judge
