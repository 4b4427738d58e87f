"""The Gradescope autograder zip: built from the checkout, its run_autograder grades a submission into a
results.json that follows Gradescope's specification (run here with the installed package)."""
import json
import os
import stat
import subprocess
import sys
import zipfile

import jsonschema
import pytest

from tests.test_formats import GRADESCOPE_SCHEMA



@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    env = {**os.environ, "AUTOGRADER_SECRET": "course-secret-42"}
    run = subprocess.run([sys.executable, "-m", "autograder", "gradescope-package", "-o", str(out), "-a", "graphs"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    return out


def test_package_has_gradescope_layout(package, tmp_path):
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder", "constraints.txt", "secret"} <= names  # at the zip's root
        wheel = next(n for n in names if n.startswith("dist/") and n.endswith(".whl"))
        for script in ("setup.sh", "run_autograder"):
            assert zf.getinfo(script).external_attr >> 16 & stat.S_IXUSR
            assert zf.read(script).startswith(b"#!/usr/bin/env bash")
        assert "torch==2.13.0" in zf.read("constraints.txt").decode()
        assert wheel.split("/")[1] in zf.read("setup.sh").decode()
        assert zf.read("secret") == b"course-secret-42"
        zf.extract(wheel, tmp_path)
    with zipfile.ZipFile(tmp_path / wheel) as whl:  # the wheel carries the drivers and assignments
        files = whl.namelist()
    assert "autograder/assignments/graphs/student_side.py" in files and "autograder/worker.py" in files
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", "-c", zipfile.ZipFile(package).read(script).decode()], check=True)


def run_autograder(package, tmp_path, submission_files):
    source = tmp_path / "source"
    zipfile.ZipFile(package).extractall(source)
    sub = tmp_path / "submission"
    sub.mkdir()
    for name, data in submission_files.items():
        (sub / name).write_bytes(data)
    results = tmp_path / "results"
    env = {**os.environ, "AUTOGRADER_SOURCE": str(source), "AUTOGRADER_SUBMISSION": str(sub),
           "AUTOGRADER_RESULTS": str(results), "AUTOGRADER_BIN": os.path.dirname(sys.executable)}
    env.pop("AUTOGRADER_SECRET", None)
    run = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    data = json.loads((results / "results.json").read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    return data


def test_run_autograder_grades_the_submission(package, root, tmp_path):
    data = run_autograder(package, tmp_path, {"graphs.py": (root / "reference" / "graphs.py").read_bytes()})
    assert data["score"] == 12 and sum(t["max_score"] for t in data["tests"]) == pytest.approx(12, abs=1e-9)
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert hidden and all("(hidden cases)" in t["name"] for t in hidden)  # hidden cases ran, with the secret


def test_run_autograder_reports_a_broken_upload_with_score_zero(package, tmp_path):
    data = run_autograder(package, tmp_path, {"graphs.zip": b"not a zip at all"})
    assert data["score"] == 0
    assert data["tests"][0]["status"] == "failed" and "not a valid zip" in data["tests"][0]["output"]


def test_run_autograder_writes_results_even_when_the_grader_cannot_start(package, tmp_path):
    source = tmp_path / "source"
    zipfile.ZipFile(package).extractall(source)
    env = {**os.environ, "AUTOGRADER_SOURCE": str(source), "AUTOGRADER_SUBMISSION": str(tmp_path),
           "AUTOGRADER_RESULTS": str(tmp_path / "results"), "AUTOGRADER_BIN": str(tmp_path / "no-venv")}
    run = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True)
    assert run.returncode == 0
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    assert data["score"] == 0 and "failed" in data["output"]
