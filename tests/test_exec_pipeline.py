"""What does not depend on the submission is done once: a syntax error is found before any process starts,
a timed-out exercise does not wait again on its hidden cases, truths are kept between `check` runs (never
stale, a corrupt entry ignored) and computed once per grade-all run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from autograder.assignments import exercises
from autograder.core.exercise import Seeds
from autograder.core.pipeline import _PREPARED, _cache_entry, grade, prepared_cases
from autograder.sandbox import RunResult

ROOT = Path(__file__).resolve().parent.parent


class RecordingRunner:
    """Stands in for the runner: records the groups it is asked to run, answers with `answer(group)`."""
    sandbox = "test"

    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def start(self):
        pass

    def run_cases(self, submission, module, driver, cases, **limits):
        self.calls.append((module, len(cases)))
        return [self.answer(len(self.calls)) for _ in cases]


def test_a_syntax_error_is_found_before_any_process_starts(tmp_path):
    source = (ROOT / "reference" / "graphs.py").read_text().replace("        return dout, dout\n",
                                                                    "        return (dout, dout\n", 1)
    (tmp_path / "graphs.py").write_text(source)
    line = source.splitlines().index("        return (dout, dout") + 1
    runner = RecordingRunner()
    result = grade(tmp_path, exercises("graphs"), hidden=True, runner=runner, seeds=Seeds(hidden=True, secret="s"))
    assert runner.calls == []  # nothing ran
    assert result.score == 0
    for ex in result.exercises:
        check = ex.checks[0]
        assert check.verdict == "error"
    public = [ex for ex in result.exercises if ex.where]
    assert public and all(ex.where == f"graphs.py, line {line}" for ex in public)
    code, caret, error = result.exercises[0].message.splitlines()
    assert code == "    return (dout, dout" and caret == "           ^"  # under the unclosed parenthesis
    assert error.startswith("SyntaxError: ") and error.endswith(f"(graphs.py, line {line})")


def test_a_file_that_compiles_is_run(tmp_path):
    shutil.copy(ROOT / "reference" / "graphs.py", tmp_path / "graphs.py")
    ok = RunResult("not_implemented", message="raises NotImplementedError")
    runner = RecordingRunner(lambda n: ok)
    grade(tmp_path, exercises("graphs")[:1], hidden=False, runner=runner, seeds=Seeds(hidden=False))
    assert [module for module, _ in runner.calls] == ["graphs"]


def test_hidden_cases_are_not_run_after_the_public_ones_timed_out(tmp_path):
    shutil.copy(ROOT / "reference" / "graphs.py", tmp_path / "graphs.py")
    runner = RecordingRunner(lambda n: RunResult("timeout", message="did not finish within 10 s"))
    ex = exercises("graphs")[0]
    result = grade(tmp_path, [ex], hidden=True, runner=runner, seeds=Seeds(hidden=True, secret="s"))
    assert len(runner.calls) == 1  # the public group only
    cases = result.exercises[0].checks[0].cases
    assert any(c.hidden for c in cases) and all(c.verdict == "timeout" for c in cases)


# -- truths kept on disk (`check`) ---------------------------------------------------------------------------

@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr("autograder.core.pipeline._PREPARED", {})
    return exercises("graphs")[1]  # MultiplyGate


def test_truths_are_kept_on_disk_and_read_back(tmp_path, fresh, monkeypatch):
    seeds = Seeds(hidden=False)
    computed = prepared_cases(fresh, seeds, tmp_path)
    entry = _cache_entry(tmp_path, fresh, seeds)
    assert entry.is_file() and [p.name for p in tmp_path.iterdir()] == [entry.name]  # written atomically
    # What is on disk is what the next process gets (here: an entry doctored to show it is read).
    doctored = [(case, {k: v * 2 for k, v in truth.items()}) for case, truth in computed]
    torch.save(doctored, entry)
    monkeypatch.setattr("autograder.core.pipeline._PREPARED", {})
    again = prepared_cases(fresh, seeds, tmp_path)
    assert all(torch.equal(a[1][k], b[1][k]) for a, b in zip(again, doctored) for k in a[1])


def test_a_corrupt_entry_is_computed_again_and_replaced(tmp_path, fresh, monkeypatch):
    seeds = Seeds(hidden=False)
    computed = prepared_cases(fresh, seeds, tmp_path)
    entry = _cache_entry(tmp_path, fresh, seeds)
    for junk in (b"", b"not a pickle", entry.read_bytes()[:50]):
        entry.write_bytes(junk)
        monkeypatch.setattr("autograder.core.pipeline._PREPARED", {})
        again = prepared_cases(fresh, seeds, tmp_path)
        assert all(torch.equal(a[1][k], b[1][k]) for a, b in zip(again, computed) for k in a[1])
        assert torch.load(entry, weights_only=False)  # replaced by a good one


def test_the_key_holds_everything_that_determines_the_truths(tmp_path, fresh, monkeypatch):
    """Another torch, another source of the assignment package (or of its data), other seeds, another
    exercise: another entry. Never a stale one."""
    seeds = Seeds(hidden=False)
    base = _cache_entry(tmp_path, fresh, seeds)
    assert base == _cache_entry(tmp_path, fresh, Seeds(hidden=False))
    assert base != _cache_entry(tmp_path, fresh, Seeds(hidden=True, secret="a"))
    assert _cache_entry(tmp_path, fresh, Seeds(hidden=True, secret="a")) != \
        _cache_entry(tmp_path, fresh, Seeds(hidden=True, secret="b"))
    assert base != _cache_entry(tmp_path, exercises("graphs")[0], seeds)
    monkeypatch.setattr("autograder.core.pipeline._SOURCE_HASHES", {"graphs": "edited"})
    assert base != _cache_entry(tmp_path, fresh, seeds)
    monkeypatch.setattr("autograder.core.pipeline._SOURCE_HASHES", {})
    monkeypatch.setattr(torch, "__version__", "0.0-other")
    assert base != _cache_entry(tmp_path, fresh, seeds)


def test_every_exercise_of_the_course_has_its_truths_kept(tmp_path):
    """The cache recognises every assignment package's exercises, through their decorators: backprop_ninja's
    (wrapped to run single-threaded) were computed again by every check and every grade-all worker."""
    from autograder.assignments import all_exercises
    seeds = Seeds(hidden=False)
    entries = {ex.id: _cache_entry(tmp_path, ex, seeds) for exs in all_exercises().values() for ex in exs}
    assert not [eid for eid, entry in entries.items() if entry is None]
    assert len(set(entries.values())) == len(entries)  # one entry per exercise
    assert {eid.split(".")[0] for eid in entries} >= {"graphs", "backprop_ninja", "micrograd"}


def test_the_source_hash_covers_the_assignment_package(monkeypatch):
    from autograder.core import pipeline
    monkeypatch.setattr(pipeline, "_SOURCE_HASHES", {})
    before = pipeline._sources_hash("graphs")
    original = Path.read_bytes

    def edited(path):
        data = original(path)
        return data + b"# edited" if path.name == "student_side.py" and "graphs" in path.parts else data
    monkeypatch.setattr(Path, "read_bytes", edited)
    monkeypatch.setattr(pipeline, "_SOURCE_HASHES", {})
    assert pipeline._sources_hash("graphs") != before


def test_an_exercise_declared_elsewhere_is_not_kept(tmp_path):
    from dataclasses import replace
    ex = replace(exercises("graphs")[0], truth=lambda case: {})
    assert _cache_entry(tmp_path, ex, Seeds(hidden=False)) is None


def test_report_shows_progress_as_it_grades(tmp_path):
    """`autograder report` says which exercise it is grading and each one's score as it finishes (as `check`
    does), instead of staying silent until the page is written."""
    from autograder.frontends.report import build_report
    shutil.copy(ROOT / "reference" / "graphs.py", tmp_path / "graphs.py")
    events = []
    runner = RecordingRunner(lambda n: RunResult("not_implemented", message="raises NotImplementedError"))
    build_report(tmp_path, ["graphs"], runner=runner, status=lambda text: events.append(("status", text)),
                 on_exercise=lambda ex: events.append(("graded", ex.id)))
    ids = [ex.id for ex in exercises("graphs")]
    expected = [e for i in ids for e in (("status", f"grading {i}…"), ("graded", i))]
    assert events == expected
