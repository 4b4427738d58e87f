"""core/session.py: every front end grades through one GradingSession, and nothing else builds a runner.

Two guards, each able to fail when someone adds a sixth place that grades its own way:
- the import graph: no module of the package but core/session.py (and the sandbox itself) constructs a
  Runner or calls credit_runner, and none reads the grader's settings from the environment but
  core/config.py and the places listed (which the session report names);
- the behaviour: each front end, run on a tiny submission, calls GradingSession to grade it.
"""
from __future__ import annotations

import ast
import io
import shutil
from pathlib import Path

import pytest

from autograder.core.config import Config
from autograder.core.session import GradingSession

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "autograder"
BUILDERS = {"Runner", "credit_runner"}

# Where the environment is still read, and why (each a known exception; a new one fails the test below).
ENV_READERS = {
    "autograder/core/config.py",                       # the one place the settings are read
    "autograder/sandbox/mechanisms.py",                # the sandbox's own reads (mode/user/uids/protect)
    "autograder/sandbox/client.py",                    # the sandbox's own reads (startup timeout, debug)
    "autograder/runtime/worker.py",                    # inside the sandbox: what the runner set for it
    "autograder/core/exercise.py",                     # Seeds.for_credit: a caller without a session
    "autograder/core/pipeline.py",                     # truth_cache_dir: a caller without a session
    "autograder/core/data.py",                         # XDG_CACHE_HOME for the names dataset
    "autograder/integrations/nbgrader/preprocessor.py",  # take_secret moves the secret out of the environment
    "autograder/integrations/nbgrader/kernel.py",      # NBGRADER_EXECUTION when another setting is unusable
    "autograder/integrations/nbgrader/course.py",      # nbgrader's children get this environment (PATH)
    "autograder/integrations/batch.py",                # the settings a worker sets; TMPDIR of a run
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def test_only_the_session_and_the_sandbox_build_a_runner():
    offenders = []
    for rel, tree in _modules():
        if rel == "autograder/core/session.py" or rel.startswith("autograder/sandbox/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called_name(node) in BUILDERS:
                offenders.append(f"{rel}:{node.lineno} calls {_called_name(node)}()")
    assert offenders == [], "grade through core.session.GradingSession:\n" + "\n".join(offenders)


def test_the_guard_finds_a_sixth_place(tmp_path):
    """The check above, on a module that builds its own runner, reports it (the guard can fail)."""
    tree = ast.parse("from autograder.sandbox import Runner\nrunner = Runner()\n")
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called_name(n) in BUILDERS]
    assert len(found) == 1


def test_settings_are_read_from_the_environment_only_where_listed():
    readers = set()
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "environ" and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.add(rel)
            if isinstance(node, ast.Call) and _called_name(node) == "getenv":
                readers.add(rel)
    assert readers - ENV_READERS == set(), "read settings with core.config.Config.from_env, once, and pass it down"


def test_front_ends_take_the_sandboxs_public_names_from_the_package():
    """Front ends and integrations take the sandbox's public names from `autograder.sandbox`; the private
    helpers still imported from its modules are listed here."""
    allowed_private = {("autograder/integrations/nbgrader/preprocessor.py", "_hidden_paths"),
                       ("autograder/integrations/nbgrader/preprocessor.py", "_python_paths"),
                       ("autograder/integrations/gradescope.py", "_slot_uids")}
    offenders = []
    for rel, tree in _modules():
        if rel.startswith(("autograder/sandbox/", "autograder/runtime/")):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autograder.sandbox."):
                # A submodule of the sandbox: only the private helpers listed above come from there.
                offenders += [f"{rel}:{node.lineno} {a.name}" for a in node.names if (rel, a.name) not in allowed_private]
    assert offenders == [], "import these from autograder.sandbox:\n" + "\n".join(offenders)


# -- the behaviour: each front end grades through the session ------------------------------------------------

@pytest.fixture
def calls(monkeypatch):
    """Counts GradingSession.grade / grade_submission calls (each still grades)."""
    seen = []
    for name in ("grade", "grade_submission"):
        original = getattr(GradingSession, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(GradingSession, name, spy)
    return seen


@pytest.fixture
def submission(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copyfile(ROOT / "reference" / "graphs.py", sub / "graphs.py")
    return sub


def _full(result) -> bool:
    return result.exercises and result.score == result.max_score


def test_cli_check_and_grade(calls, submission, tmp_path, capsys, monkeypatch):
    from autograder.frontends.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(submission), "-a", "graphs"]) == 0
    assert calls == ["grade"]
    assert "Total:" in capsys.readouterr().out  # the table and its total, as before
    out = tmp_path / "result.json"
    assert main(["grade", str(submission), "-a", "graphs", "-o", str(out)]) == 0
    assert calls == ["grade", "grade_submission"]
    import json
    data = json.loads(out.read_text())
    assert data["score"] == data["max_score"] > 0 and data["hidden"] is True


def test_grade_all_worker(calls, submission, monkeypatch):
    from autograder.core.exercise import Seeds
    from autograder.integrations import batch
    monkeypatch.setattr(batch, "_SESSIONS", {})
    try:
        data = batch.grade_one(str(submission), "s", ["graphs"], Seeds(hidden=False), None, False, {}, None)
    finally:
        for session in batch._SESSIONS.values():
            session.close()
    assert calls == ["grade_submission"] and data["score"] == data["max_score"] > 0


def test_report_watch_notebook_check_and_grade_cells(calls, submission, runner, monkeypatch):
    from rich.console import Console

    from autograder.assignments import exercises
    from autograder.frontends import report, watch
    from autograder.integrations import notebook_check
    from autograder.integrations.nbgrader import kernel

    assert "<html" in report.build_report(submission, ["graphs"], runner=runner, train_steps=0)
    assert calls == ["grade"]

    with GradingSession(runner=runner) as session:
        watcher = watch.Watcher(submission, exercises("graphs"), session, Console(file=io.StringIO()))
        watcher.first()
    assert calls == ["grade"] * 2 and watcher.results

    source = (submission / "graphs.py").read_text()
    checked = notebook_check.check("graphs", cells=[source], runner=runner)
    assert calls == ["grade"] * 3 and _full(checked.result)

    monkeypatch.setattr(kernel, "_session", GradingSession(runner=runner).open())
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    points = kernel.notebook_grade("graphs.AddGate", points=1.0, modules={"graphs.py": source})
    assert calls == ["grade"] * 4 and points == 1.0


# -- the session itself ----------------------------------------------------------------------------------------

def test_a_session_for_credit_refuses_without_the_secret_before_building_a_runner(monkeypatch):
    from autograder.core.exercise import SecretMissing
    from autograder.core import session as session_module
    built = []
    monkeypatch.setattr(session_module, "Runner", lambda *a, **k: built.append(a) or pytest.fail("built"))
    with pytest.raises(SecretMissing, match="AUTOGRADER_SECRET"):
        GradingSession(Config.from_env({}), credit=True).open()
    assert built == []
    # public only: no secret needed, and public seeds
    assert GradingSession(Config.from_env({}, public_only=True), credit=True).seeds().hidden is False


def test_a_session_for_credit_refuses_without_isolation_unless_unsandboxed(monkeypatch):
    from autograder.core import session as session_module
    from autograder.sandbox import IsolationMissing

    class Unisolated:
        isolated, sandbox = False, "none: not isolated"

        class mechanism:
            problem = "no bubblewrap here"

        def __init__(self, *args, **kwargs):
            self.closed = False

        def start(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(session_module, "Runner", Unisolated)
    config = Config.from_env({"AUTOGRADER_SECRET": "x"})
    with pytest.raises(IsolationMissing, match="no bubblewrap here"):
        GradingSession(config, credit=True).open()
    with GradingSession(config.with_flags(unsandboxed=True), credit=True) as session:
        assert "--unsandboxed" in session.sandbox and session.seeds().hidden
    with GradingSession(config) as session:  # check: degrades and says so
        assert session.sandbox == "none: not isolated"


def test_the_session_passes_its_settings_to_the_runner(monkeypatch):
    from autograder.core import session as session_module
    made = []

    class Recording:
        isolated, sandbox = True, "fake"

        def __init__(self, mode=None, *, protect=()):
            made.append((mode, tuple(protect)))

        def start(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(session_module, "Runner", Recording)
    config = Config.from_env({"AUTOGRADER_SANDBOX": "bwrap", "AUTOGRADER_PROTECT": "/srv/secret-dir"})
    with GradingSession(config, protect=["/out"]):
        pass
    assert made == [("bwrap", (Path("/srv/secret-dir"), Path("/out")))]


def test_a_borrowed_runner_is_left_open(runner):
    with GradingSession(runner=runner) as session:
        assert session.runner is runner
    assert runner._proc is not None and runner._proc.poll() is None
