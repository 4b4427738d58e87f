"""What changed since the last run: the line every check ends with (history.py), and the real command
printing it after two runs of a student's edit."""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from autograder.frontends import history
from autograder.core.result import CheckResult, ExerciseResult, GradeResult

ROOT = Path(__file__).resolve().parents[1]


def _check(name, passed, points=1):
    return CheckResult(name=name, verdict="approx" if passed else "wrong", local_verdict=None, maxdiff=0.0,
                       shape=[1], expected_shape=[1], mistake=None, message="", hint="", max_points=points)


def _result(**exercises) -> GradeResult:
    return GradeResult("sub", exercises=[
        ExerciseResult(id=f"backprop_ninja.{ex}", title=ex, max_score=len(checks),
                       checks=[_check(n, ok) for n, ok in checks.items()])
        for ex, checks in exercises.items()])


def test_first_run_then_fixed_and_newly_wrong(tmp_path):
    first = history.record(tmp_path, _result(manual_backward={"logprobs": True, "probs": False, "h": False}))
    assert first.first and history.line(first).startswith("first run here: score 1/3")
    # the folder keeps itself out of git
    assert (tmp_path / ".backprop-lab" / ".gitignore").read_text().splitlines()[-1] == "*"
    second = history.record(tmp_path, _result(manual_backward={"logprobs": False, "probs": True, "h": True}))
    assert second.fixed == ["manual_backward probs", "manual_backward h"]
    assert second.newly_wrong == ["manual_backward logprobs"]
    assert (second.before, second.after) == (Fraction(1), Fraction(2))
    assert history.line(second) == ("since the last run: fixed: manual_backward probs, manual_backward h; "
                                    "newly wrong: manual_backward logprobs; score 1 -> 2")


def test_one_assignment_run_compares_with_that_assignment_only(tmp_path):
    history.record(tmp_path, _result(manual_backward={"a": False, "b": False}, train={"train": True}))
    change = history.record(tmp_path, _result(train={"train": False}))
    # single-check exercises are named by the exercise alone; the other exercise's score is not counted
    assert change.newly_wrong == ["train"] and change.fixed == []
    assert (change.before, change.after) == (Fraction(1), Fraction(0))
    # ... and the other exercise's state is kept for its next run
    again = history.record(tmp_path, _result(manual_backward={"a": True, "b": False}))
    assert again.fixed == ["manual_backward a"] and again.before == 0 and again.after == 1


def test_nothing_changed_says_so(tmp_path):
    history.record(tmp_path, _result(train={"train": True}))
    assert history.record_line(tmp_path, _result(train={"train": True})) == \
        "since the last run: fixed: nothing; newly wrong: nothing; score 1 -> 1"


@pytest.mark.parametrize("content", ["not json", "[]", '{"version": 1, "exercises": {"x": {"score": "1/0"}}}',
                                     '{"version": 99, "exercises": {}}', '{"version": 1, "exercises": {"x": 3}}'])
def test_a_corrupt_file_is_a_first_run(tmp_path, content):
    path = history.history_file(tmp_path)
    path.parent.mkdir()
    path.write_text(content)
    change = history.record(tmp_path, _result(train={"train": True}))
    assert change.first
    assert json.loads(path.read_text())["exercises"]["backprop_ninja.train"]["passed"] == {"train": True}


def test_a_folder_that_cannot_be_written_still_prints_the_line(tmp_path):
    (tmp_path / ".backprop-lab").write_text("a file where the folder would be")  # fails for root too
    text = history.record_line(tmp_path, _result(train={"train": True}))
    assert text.startswith("first run here") and "could not keep this result" in text


def test_nothing_to_compare_for_a_failed_or_hidden_grade(tmp_path):
    assert history.record_line(tmp_path, GradeResult("sub", error="not a zip")) == ""
    hidden = _result(train={"train": True})
    hidden.hidden = True
    assert history.record_line(tmp_path, hidden) == ""
    assert not (tmp_path / ".backprop-lab").exists()


def _check_cli(sub: Path) -> str:
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
    out = subprocess.run([sys.executable, "-m", "autograder", "check", str(sub), "-a", "graphs"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_line_after_two_runs_of_check(tmp_path):
    """A student breaks a gate, checks, fixes it, checks again: the second run names what was fixed."""
    sub = tmp_path / "sub"
    sub.mkdir()
    source = (ROOT / "reference" / "graphs.py").read_text()
    broken = source.replace("dx = self.y * dout", "dx = -self.y * dout", 1)
    assert broken != source, "the catalogued sign mistake no longer applies to reference/graphs.py"
    (sub / "graphs.py").write_text(broken)
    first = _check_cli(sub)
    assert "first run here: score" in first
    (sub / "graphs.py").write_text(source)
    second = _check_cli(sub).splitlines()
    line = next(x for x in second if x.startswith("since the last run"))
    before = next(x for x in first.splitlines() if x.startswith("Total:")).split()[1].split("/")[0]
    total = next(x for x in second if x.startswith("Total:")).split()[1].split("/")[0]
    assert line == f"since the last run: fixed: MultiplyGate dx; newly wrong: nothing; score {before} -> {total}"
    assert float(before) < float(total)
    # and the file is not a submission file: it sits in a self-ignoring folder
    assert (sub / ".backprop-lab" / ".gitignore").exists()


def test_the_notebook_check_says_what_changed(runner, tmp_path, monkeypatch):
    """check() in a notebook keeps its last result beside the notebook (the kernel's working directory)."""
    from autograder.integrations.notebook_check import check
    monkeypatch.chdir(tmp_path)
    source = (ROOT / "reference" / "graphs.py").read_text().split('if __name__ == "__main__":')[0]
    first = check("graphs", cells=[source], runner=runner)
    assert first.history.startswith("first run here: score 12/12")
    broken = check("graphs", cells=[source.replace("dx = self.y * dout", "dx = -self.y * dout", 1)], runner=runner)
    assert broken.history == "since the last run: fixed: nothing; newly wrong: MultiplyGate dx; score 12 -> 11.5"
    assert broken.history in repr(broken) and html.escape(broken.history) in broken._repr_html_()
    assert (tmp_path / ".backprop-lab" / "last-notebook-graphs.json").is_file()
