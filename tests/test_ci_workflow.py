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


def test_workflow_runs_on_push_and_feeds_the_reporter(workflow):
    assert "push" in workflow["on"]
    grade = next(s for s in steps(workflow) if s.get("id") == "grade")
    reporter = next(s for s in steps(workflow) if "autograding-grading-reporter" in s.get("uses", ""))
    runner = reporter["with"]["runners"]
    # The reporter reads `<RUNNER>_RESULTS` (upper-cased id) for each runner it is given.
    assert reporter["env"][f"{runner.upper()}_RESULTS"] == "${{ steps.%s.outputs.result }}" % grade["id"]
    assert "--public-only" in grade["run"]  # students can read the workflow: no hidden cases here


def run_grade_step(workflow, repo, tmp_path):
    grade = next(s for s in steps(workflow) if s.get("id") == "grade")
    env = {**os.environ, "GITHUB_WORKSPACE": str(repo), "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "RUNNER_TEMP": str(tmp_path / "runner"), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    (tmp_path / "runner").mkdir()
    # Actions runs a step in its working-directory (outside the checkout); the checkout is the current
    # directory only if the step does not say otherwise.
    cwd = tmp_path / "runner" if grade.get("working-directory") == "${{ runner.temp }}" else repo
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", grade["run"]], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    return json.loads(base64.b64decode(outputs["result"])), (tmp_path / "summary").read_text()


def test_grade_step_in_a_student_repository(workflow, root, tmp_path):
    repo = tmp_path / "student-repo"
    repo.mkdir()
    shutil.copy(root / "reference" / "graphs.py", repo / "graphs.py")
    (repo / ".git").mkdir()  # a checkout: not part of the submission
    result, summary = run_grade_step(workflow, repo, tmp_path)
    # What the reporter computes: the sum of the tests' scores out of max_score.
    assert result["version"] == 1 and result["status"] == "pass"
    assert sum(t["score"] for t in result["tests"]) == result["max_score"] == 12
    assert summary.startswith("## Autograder: 12/12 points")
    ET.parse(tmp_path / "runner" / "autograder" / "junit.xml")


def test_grade_step_reports_partial_points_for_a_bug(workflow, root, tmp_path):
    repo = tmp_path / "student-repo"
    repo.mkdir()
    source = (root / "reference" / "graphs.py").read_text()
    assert "dq = 2.0 * q" in source
    (repo / "graphs.py").write_text(source.replace("dq = 2.0 * q", "dq = q"))
    result, summary = run_grade_step(workflow, repo, tmp_path)
    assert result["status"] == "fail"
    score = sum(t["score"] for t in result["tests"])
    assert 0 < score < result["max_score"]
    failing = [t for t in result["tests"] if t["status"] == "fail"]
    assert failing and all(t["name"].startswith("graphs.l2_of_matvec") for t in failing)
    assert "l2_of_matvec" in summary


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
    result, summary = run_grade_step(workflow, repo, tmp_path)
    assert result["status"] == "fail"
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
    grade = next(s for s in steps(workflow) if s.get("id") == "grade")
    commands = [line.strip() for line in grade["run"].splitlines() if "autograder" in line and "python" in line]
    assert commands and all(c.split()[:3] == ["python", "-I", "-m"] or "$(python -I -m" in c for c in commands)
