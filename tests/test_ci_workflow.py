"""The GitHub Actions workflow shipped to students: its grading step, run here as Actions would run it,
reports the points the way the Classroom reporter reads them."""
import base64
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml



@pytest.fixture(scope="module")
def workflow(root):
    return yaml.safe_load((root / "student_template" / ".github" / "workflows" / "grade.yml").read_text())


def steps(workflow):
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _grade_steps(workflow):
    return [s for s in steps(workflow) if s.get("name", "").startswith("Grade ")]


def test_workflow_runs_on_push_and_feeds_the_reporter(workflow):
    from autograder.assignments import NAMES
    assert "push" in workflow["on"]
    grades = _grade_steps(workflow)
    assert sorted(s["id"] for s in grades) == sorted(NAMES)  # one step (one runner) per assignment
    reporter = next(s for s in steps(workflow) if "autograding-grading-reporter" in s.get("uses", ""))
    assert reporter["with"]["runners"] == "${{ steps.detect.outputs.runners }}"
    # The reporter reads `<RUNNER>_RESULTS` (upper-cased id) for each runner it is given.
    for step in grades:
        assert reporter["env"][f"{step['id'].upper()}_RESULTS"] == "${{ steps.%s.outputs.result }}" % step["id"]
        assert step["if"] == f"contains(steps.detect.outputs.assignments, ' {step['id']} ')"
        assert "--public-only" in step["run"] and f"-a {step['id']} " in step["run"]  # no hidden cases here
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and "junit-*.xml" in upload["with"]["path"]
    assert not any(s.get("continue-on-error") for s in steps(workflow))  # green because grading worked


def _bash(step, env, cwd):
    return subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def run_workflow(workflow, repo, tmp_path, named=""):
    """The detect step, each Grade step its `if` selects, as Actions runs them (GITHUB_OUTPUT per step),
    then the reporter's inputs: {runner: decoded result}, the summary, the JUnit files."""
    env = {**os.environ, "GITHUB_WORKSPACE": str(repo), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "RUNNER_TEMP": str(tmp_path / "runner"), "AUTOGRADER_ASSIGNMENTS": named,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    (tmp_path / "runner").mkdir()
    (tmp_path / "summary").write_text("")
    outputs = {}
    for step in steps(workflow):
        if "run" not in step or step.get("name") == "Install the autograder":
            continue
        cond = step.get("if", "")
        if cond.startswith("contains(steps.detect.outputs.assignments, "):
            needle = cond.split(", ", 1)[1].rstrip(")").strip("'")
            if needle not in outputs["detect"].get("assignments", ""):
                continue
        output = tmp_path / f"output-{step['id']}"
        output.write_text("")
        # Actions runs a step in its working-directory (outside the checkout).
        cwd = tmp_path / "runner" if step.get("working-directory") == "${{ runner.temp }}" else repo
        run = _bash(step, {**env, "GITHUB_OUTPUT": str(output)}, cwd)
        assert run.returncode == 0, (step["id"], run.stderr[-3000:])
        outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines())
    runners = outputs["detect"]["runners"].split(",")
    results = {r: json.loads(base64.b64decode(outputs[r]["result"])) for r in runners}
    return results, (tmp_path / "summary").read_text(), sorted((tmp_path / "runner" / "autograder").glob("junit-*.xml"))


def reporter(results: dict) -> tuple[float, float, dict]:
    """What classroom-resources/autograding-grading-reporter computes from its runners: `Points x/y` sent to
    Classroom (notify-classroom.js: sum of tests' scores, sum of max_score), the table's Test Score per
    runner (aggregate-results.js: passed tests / tests x max_score), and whether it fails the job (main.js:
    a runner whose status is fail or error)."""
    total = 0.0
    for r in results.values():  # as the reporter adds, one double at a time
        if r["max_score"]:
            for t in r["tests"]:
                total += t["score"]
    out_of = sum(r["max_score"] for r in results.values() if r["max_score"])
    table = {name: sum(t["status"] == "pass" for t in r["tests"]) / len(r["tests"]) * (r["max_score"] or 1)
             for name, r in results.items()}
    failed = any(r["status"] in ("fail", "error") for r in results.values())
    return total, out_of, {"table": table, "failed": failed}


def test_grade_step_in_a_student_repository(workflow, root, tmp_path):
    repo = tmp_path / "student-repo"
    repo.mkdir()
    shutil.copy(root / "reference" / "graphs.py", repo / "graphs.py")
    (repo / ".git").mkdir()  # a checkout: not part of the submission
    results, summary, junit = run_workflow(workflow, repo, tmp_path)
    assert list(results) == ["graphs"]  # a graphs-only repository is graded on graphs only: 12, not 87
    total, out_of, seen = reporter(results)
    assert (total, out_of) == (12, 12) and seen["table"] == {"graphs": 12} and not seen["failed"]  # exactly
    assert summary.startswith("## Autograder: 12/12 points")
    assert [p.name for p in junit] == ["junit-graphs.xml"]
    ET.parse(junit[0])


def test_the_reporters_table_equals_the_recorded_points(workflow, root, tmp_path):
    """A bug in graphs (partial points) and the untouched micrograd template, in one repository: per
    runner, the reporter's table and the points it sends equal the points `grade` recorded; the job is
    not failed for wrong answers."""
    repo = tmp_path / "student-repo"
    repo.mkdir()
    source = (root / "reference" / "graphs.py").read_text()
    assert "dq = 2.0 * q" in source
    (repo / "graphs.py").write_text(source.replace("dq = 2.0 * q", "dq = q"))
    shutil.copytree(root / "reference" / "micrograd", repo / "micrograd", ignore=shutil.ignore_patterns("__pycache__"))
    engine = repo / "micrograd" / "engine.py"
    engine.write_text(engine.read_text().replace("self.grad += other.data * out.grad", "self.grad = other.data * out.grad", 1))
    results, summary, junit = run_workflow(workflow, repo, tmp_path)
    assert sorted(results) == ["graphs", "micrograd"]
    recorded = {name: json.loads((tmp_path / "runner" / "autograder" / f"{name}.json").read_text()) for name in results}
    total, out_of, seen = reporter(results)
    assert not seen["failed"]
    assert total == pytest.approx(sum(r["score"] for r in recorded.values()), abs=1e-6)
    assert out_of == pytest.approx(sum(r["max_score"] for r in recorded.values()), abs=1e-9)
    for name, r in recorded.items():
        assert 0 < r["score"] < r["max_score"], name  # partial points: where the old table went wrong
        assert seen["table"][name] == pytest.approx(r["score"], abs=1e-6), name
    failing = [t for t in results["graphs"]["tests"] if t["status"] == "fail"]
    assert failing and all(t["name"].startswith("graphs.l2_of_matvec") for t in failing)
    assert "l2_of_matvec" in summary
    assert [p.name for p in junit] == ["junit-graphs.xml", "junit-micrograd.xml"]


def test_the_repository_may_name_its_assignment(workflow, root, tmp_path):
    repo = tmp_path / "student-repo"
    shutil.copytree(root / "student_template", repo, ignore=shutil.ignore_patterns(".github", "__pycache__"))
    results, _, _ = run_workflow(workflow, repo, tmp_path, named="graphs")
    assert list(results) == ["graphs"] and results["graphs"]["max_score"] == 12
    bad = subprocess.run([sys.executable, "-I", "-m", "autograder.integrations.classroom", "detect", str(repo)],
                         env={**os.environ, "AUTOGRADER_ASSIGNMENTS": "graph"}, capture_output=True, text=True)
    assert bad.returncode == 1 and "graph" in bad.stderr and "backprop_ninja" in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = subprocess.run([sys.executable, "-I", "-m", "autograder.integrations.classroom", "detect", str(empty)],
                          env={**os.environ, "AUTOGRADER_ASSIGNMENTS": ""}, capture_output=True, text=True)
    assert none.returncode == 1 and "no assignment files found" in none.stderr


def test_a_repository_autograder_package_cannot_stand_in_for_the_grader(workflow, root, tmp_path):
    """An untouched template plus a repo-root `autograder/` whose formats.py reports full marks: the
    step runs the installed grader (`python -I`, outside the checkout), so the points are the template's."""
    repo = tmp_path / "student-repo"
    shutil.copytree(root / "student_template", repo, ignore=shutil.ignore_patterns(".github", "__pycache__"))
    fake = repo / "autograder"
    fake.mkdir()
    forged = base64.b64encode(json.dumps({"version": 1, "status": "pass", "max_score": 87, "tests": [
        {"name": "all", "status": "pass", "score": 87, "max_score": 87}]}).encode()).decode()
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(f"print({forged!r})\n")
    (fake / "formats.py").write_text(f"print({forged!r})\n")
    (fake / "cli.py").write_text("def main(argv=None):\n    return 0\n")
    results, summary, _ = run_workflow(workflow, repo, tmp_path)
    from autograder.assignments import NAMES
    assert sorted(results) == sorted(NAMES)  # the template holds every assignment's files
    for result in results.values():
        assert sum(t["score"] for t in result["tests"]) == 0 < result["max_score"]
    assert "87/87" not in summary


def test_the_package_source_is_named_explicitly(workflow):
    """No guessable default package name: whoever registered it on PyPI would be installed."""
    (job,) = workflow["jobs"].values()
    assert job["env"]["AUTOGRADER_PACKAGE"] == "${{ vars.AUTOGRADER_PACKAGE }}"
    install = next(s for s in steps(workflow) if s.get("name") == "Install the autograder")
    env = {**os.environ, "AUTOGRADER_PACKAGE": ""}
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", install["run"]], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and "AUTOGRADER_PACKAGE" in run.stdout
    commands = [line.strip() for step in steps(workflow) if step.get("id") in ("detect", "graphs", "micrograd", "backprop_ninja")
                for line in step["run"].splitlines() if "autograder" in line and "python" in line]
    assert commands and all(c.split()[:3] == ["python", "-I", "-m"] or "$(python -I -m" in c for c in commands)
