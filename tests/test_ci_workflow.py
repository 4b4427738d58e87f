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
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "RUNNER_TEMP": str(tmp_path / "runner"), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    (tmp_path / "runner").mkdir()
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", grade["run"]], cwd=repo, env=env, capture_output=True,
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
