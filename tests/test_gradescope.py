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

from autograder.integrations.gradescope import FAILED

from tests.test_formats import GRADESCOPE_SCHEMA as FORMAT_SCHEMA

# Gradescope's specification: a top-level score is optional when every test has one. run_autograder leaves
# it out when hidden-case tests exist (the total is then the tests' sum, which Gradescope hides from the
# student while any test is after_published).
GRADESCOPE_SCHEMA = {**FORMAT_SCHEMA, "required": ["tests"]}



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
    assert "autograder/assignments/graphs/student_side.py" in files and "autograder/runtime/worker.py" in files
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
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(12, abs=1e-9)
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(12, abs=1e-9)
    assert "score" not in data  # no visible number that holds the hidden points
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert hidden and all("(hidden cases)" in t["name"] for t in hidden)  # hidden cases ran, with the secret
    # Before publication the student sees the visible tests and the summary: no hidden points in it.
    hidden_points = sum(t["max_score"] for t in hidden)
    visible_points = sum(t["max_score"] for t in data["tests"] if t not in hidden)
    assert f"{visible_points:g}/{visible_points:g}" in data["output"] and "/12" not in data["output"]
    assert f"({hidden_points:g} points) are shown when grades are published" in data["output"]
    assert data["stdout_visibility"] == "hidden"


def test_a_student_cannot_read_the_secret_forge_results_or_stop_the_grader(package, root, tmp_path):
    """Correct code that also reads the secret file, writes a results.json of its own and kills the process
    that runs it: none of it shows in the results.json Gradescope reads."""
    results = tmp_path / "results"
    hostile = f"""
import json, os, signal
for path in ({str(tmp_path / "source" / "secret")!r}, "/autograder/source/secret"):
    try:
        print("SECRET", open(path).read())
    except OSError:
        pass
try:
    with open({str(results / "results.json")!r}, "w") as out:
        json.dump({{"score": 999, "output": "forged", "tests": []}}, out)
except OSError:
    pass
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
"""
    code = (root / "reference" / "graphs.py").read_text() + hostile
    data = run_autograder(package, tmp_path, {"graphs.py": code.encode()})
    text = json.dumps(data)
    assert "course-secret-42" not in text
    assert "forged" not in text
    assert data.get("score") != 999 and 0 <= round(sum(t["score"] for t in data["tests"]), 6) <= 12
    assert not (tmp_path / "source" / "secret").exists()  # held by the grader's process only


def test_package_refuses_a_missing_or_unknown_assignment(tmp_path):
    env = {**os.environ, "AUTOGRADER_SECRET": "s"}
    for args, words in ((["-a", "graph"], ["unknown assignment 'graph'", "micrograd", "graphs", "backprop_ninja"]),
                        ([], ["-a/--assignment"])):
        run = subprocess.run([sys.executable, "-m", "autograder", "gradescope-package", "-o", str(tmp_path / "z.zip"),
                              *args], capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode != 0 and not (tmp_path / "z.zip").exists()
        assert all(w in run.stderr for w in words), run.stderr
    env.pop("AUTOGRADER_SECRET")
    run = subprocess.run([sys.executable, "-m", "autograder", "gradescope-package", "-o", str(tmp_path / "z.zip"),
                          "-a", "graphs"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "AUTOGRADER_SECRET is not set" in run.stderr


def test_loose_micrograd_files_are_found_wherever_the_upload_puts_them(root, tmp_path):
    from autograder.integrations.gradescope import arrange_upload
    for layout in ("{name}", "my-work/{name}", "micrograd-main/src/{name}"):
        upload = tmp_path / layout.split("/")[0].format(name="x") / "upload"
        for name in ("engine.py", "nn.py"):
            dest = upload / layout.format(name=name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes((root / "reference" / "micrograd" / name).read_bytes())
        target = upload.parent / "arranged"
        notes = arrange_upload(upload, target, ["micrograd"])
        assert (target / "micrograd" / "engine.py").read_bytes() == (root / "reference" / "micrograd" / "engine.py").read_bytes()
        assert (target / "micrograd" / "nn.py").is_file()
        assert any("graded as micrograd/engine.py" in n for n in notes)


def test_two_candidates_for_one_file_are_named_not_guessed(root, tmp_path):
    from autograder.integrations.gradescope import arrange_upload
    upload = tmp_path / "upload"
    for folder in ("a", "b"):
        (upload / folder).mkdir(parents=True)
        (upload / folder / "engine.py").write_text("x = 1\n")
    notes = arrange_upload(upload, tmp_path / "arranged", ["micrograd"])
    assert not (tmp_path / "arranged" / "micrograd" / "engine.py").exists()
    assert any("a/engine.py" in n and "b/engine.py" in n and "as micrograd/engine.py" in n for n in notes)


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12"])
def test_constraints_resolve_for_each_supported_python(root, python, tmp_path):
    """pip's resolver, for another Python, on the project's dependencies under constraints.txt (wheels only,
    as Gradescope's image installs them; metadata only, nothing is installed)."""
    import tomllib
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    extras = project["optional-dependencies"]
    deps = [d for d in project["dependencies"] + extras["instructor"] + extras["dev"]
            if not d.startswith(project["name"])]  # dev names the instructor extra through the project itself
    # pip evaluates a constraint's environment marker for the Python it runs on, not for --python-version:
    # keep the lines the target Python would keep, as pip running on it does.
    from packaging.requirements import Requirement
    target = {"python_version": python, "python_full_version": f"{python}.0"}
    pins = [line for line in (root / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    kept = [line.split(";")[0] for line in pins
            if (req := Requirement(line)).marker is None or req.marker.evaluate(target)]
    assert len({Requirement(line).name.lower() for line in kept}) == len(kept)  # one pin per package
    if python == "%d.%d" % sys.version_info[:2]:
        # This interpreter's own environment was installed with `-c constraints.txt` (make): it is the
        # resolution for this Python. (pip's resolver on this machine's local indexes would download
        # whole CUDA wheels to read their metadata.)
        from importlib.metadata import PackageNotFoundError, version
        from packaging.version import Version
        for line in kept:
            name, pin = line.split("==")
            try:
                assert Version(version(name)).public == pin.strip(), name  # torch 2.13.0+cpu is 2.13.0
            except PackageNotFoundError:
                pass  # a pin for a package of another extra
        return
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(kept) + "\n")
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed", "--quiet",
                          "--python-version", python, "--only-binary=:all:", "--report", str(report),
                          "-c", str(constraints), *deps], capture_output=True, text=True, timeout=280)
    if run.returncode != 0 and ("NewConnectionError" in run.stderr or "Network is unreachable" in run.stderr):
        pytest.skip(f"no package index reachable: {run.stderr[-300:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    installed = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    pinned = dict(line.split("==") for line in kept)
    assert installed["torch"] == "2.13.0" and "nbgrader" in installed and "numpy" in installed
    for name, version in installed.items():  # every package the constraints name is at its pin
        assert pinned.get(name, pinned.get(name.replace("-", "_"), version)).strip() == version or \
            name not in {n.lower() for n in pinned}, (name, version)


def test_run_autograder_reports_a_broken_upload_with_score_zero(package, tmp_path):
    data = run_autograder(package, tmp_path, {"graphs.zip": b"not a zip at all"})
    assert data.get("score", 0) == 0 and sum(t["score"] for t in data["tests"]) == 0
    assert data["tests"][0]["status"] == "failed" and "not a valid zip" in data["tests"][0]["output"]


def test_run_autograder_writes_results_even_when_the_grader_cannot_start(package, tmp_path):
    source = tmp_path / "source"
    zipfile.ZipFile(package).extractall(source)
    env = {**os.environ, "AUTOGRADER_SOURCE": str(source), "AUTOGRADER_SUBMISSION": str(tmp_path),
           "AUTOGRADER_RESULTS": str(tmp_path / "results"), "AUTOGRADER_BIN": str(tmp_path / "no-venv")}
    run = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True)
    assert run.returncode == 0
    data = json.loads((tmp_path / "results" / "results.json").read_text())
    # The student is told only that grading failed and whom to ask; the detail is the instructors'.
    assert data["score"] == 0 and data["tests"] == []
    assert data["output"] == FAILED
    assert str(tmp_path) not in json.dumps(data) and "no-venv" in run.stdout


# -- the whole package, as Gradescope runs it in Docker: root, no user namespaces, the dedicated user ------

# One user per fixture instance: pytest-xdist may run this module's tests in two workers, each with its own
# module fixture, and one worker's teardown must not delete the user the other is grading as.
GS_USER = f"bl-gs-{os.getpid()}"


@pytest.fixture(scope="module")
def gradescope_root(package):
    """A folder standing in for /autograder (world-traversable, as Gradescope's is), the package's source
    extracted into it, a venv of this machine's Python 3.x that the sandbox user can run (this one may live
    under /root), and `setup.sh` run in it for real, as root. pip finds the dependencies already installed
    (this environment's site-packages is on the venv's path), so setup.sh needs no network."""
    import pwd
    import shutil
    import site
    import tempfile
    if os.geteuid() != 0:
        pytest.skip("Gradescope runs run_autograder as root; this test needs root to create the sandbox user")
    base = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if not base:
        pytest.skip(f"no system python{sys.version_info.major}.{sys.version_info.minor} the sandbox user can run")
    made_user = False
    try:
        pwd.getpwnam(GS_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", GS_USER],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create the sandbox user: {made.stderr.strip()}")
        made_user = True
    root = tempfile.mkdtemp(prefix="gradescope-root-")
    try:
        os.chmod(root, 0o755)
        zipfile.ZipFile(package).extractall(f"{root}/source")
        # Without its own pip and setuptools: those of this environment (on the path below) are the ones
        # torch was resolved with.
        subprocess.run([base, "-m", "venv", "--without-pip", f"{root}/venv"], check=True, capture_output=True, timeout=300)
        pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
        # Appended as plain paths (no .pth processing): this checkout's editable install stays out.
        with open(f"{root}/venv/lib/{pyver}/site-packages/grader-runtime.pth", "w") as pth:
            pth.write("".join(f"{p}\n" for p in site.getsitepackages()))
        subprocess.run(["chmod", "-R", "a+rX", f"{root}/venv"], check=True)
        env = {**os.environ, "AUTOGRADER_ROOT": root, "AUTOGRADER_SANDBOX_USER": GS_USER, "PIP_NO_INDEX": "1",
               # run_autograder kills every process of its uids: a range of this fixture's own, so a concurrent
               # test's sandbox children in the default range are not among them.
               "AUTOGRADER_SANDBOX_UIDS": f"{1910000000 + (os.getpid() % 100000) * 4}-{1910000003 + (os.getpid() % 100000) * 4}",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        env.pop("AUTOGRADER_SECRET", None)
        env.pop("PYTHONPATH", None)
        setup = subprocess.run(["bash", f"{root}/source/setup.sh"], env=env, capture_output=True, text=True,
                               timeout=600, cwd="/")
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        installed = subprocess.run([f"{root}/venv/bin/python", "-I", "-c", "import autograder; print(autograder.__file__)"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        assert installed.startswith(f"{root}/venv/"), installed  # the wheel, not this checkout
        yield {"root": root, "env": env, "user": GS_USER, "package_dir": os.path.dirname(installed), "setup": setup,
               "secret": zipfile.ZipFile(package).read("secret")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if made_user:
            subprocess.run(["userdel", GS_USER], capture_output=True)


def _run_in_gradescope_root(gs, files: dict[str, bytes]) -> tuple[dict, subprocess.CompletedProcess]:
    import shutil
    root = gs["root"]
    shutil.rmtree(f"{root}/submission", ignore_errors=True)
    shutil.rmtree(f"{root}/results", ignore_errors=True)
    os.makedirs(f"{root}/submission")
    # Each Gradescope run is a fresh container: the secret run_autograder removed is back.
    fd = os.open(f"{root}/source/secret", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, gs["secret"])
    os.close(fd)
    for name, data in files.items():
        with open(f"{root}/submission/{name}", "wb") as out:
            out.write(data)
    env = {**gs["env"], "AUTOGRADER_SANDBOX": "user"}
    run = subprocess.run(["bash", f"{root}/source/run_autograder"], env=env, capture_output=True, text=True,
                         timeout=600, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads(open(f"{root}/results/results.json").read())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    return data, run


def test_setup_makes_the_graders_files_unreachable_to_the_sandbox_user(gradescope_root):
    gs = gradescope_root
    assert "none of them is reachable" in gs["setup"].stdout + gs["setup"].stderr
    for path in (gs["package_dir"], f"{gs['root']}/source", f"{gs['root']}/source/secret"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    probe = subprocess.run([f"{gs['root']}/venv/bin/python", "-I", "-c",
                            "import sys, os; print([p for p in sys.argv[1:] if os.access(p, os.R_OK)])",
                            gs["package_dir"], f"{gs['package_dir']}/integrations/gradescope.py", f"{gs['root']}/source/secret"],
                           user=gs["user"], extra_groups=[], capture_output=True, text=True, cwd="/")
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_the_package_grades_in_user_mode_as_root(gradescope_root, root):
    """The issue's blocker: in `user` mode every student scored 0. The reference earns every point (hidden
    cases included), a bug loses only its exercise, and the result names the dedicated user."""
    data, run = _run_in_gradescope_root(gradescope_root, {"graphs.py": (root / "reference" / "graphs.py").read_bytes()})
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(12, abs=1e-6), run.stdout[-3000:]
    assert any(t["visibility"] == "after_published" for t in data["tests"])
    buggy = (root / "reference" / "graphs.py").read_text().replace("dq = 2.0 * q", "dq = q")
    data, run = _run_in_gradescope_root(gradescope_root, {"graphs.py": buggy.encode()})
    lost = {t["tags"][0] for t in data["tests"] if t["score"] < t["max_score"]}
    assert lost == {"graphs.l2_of_matvec"}, run.stdout[-3000:]
    import re
    wrong = [t for t in data["tests"] if t["visibility"] == "visible" and t["score"] < t["max_score"]]
    # "wrong on 0/3 public cases" read as "never wrong": the count says what passed.
    assert wrong and all(re.match(r"\*\*wrong\*\*: 0/\d+ public cases? passed", t["output"]) for t in wrong), wrong


def test_a_hostile_submission_reads_nothing_in_user_mode(gradescope_root, root):
    gs = gradescope_root
    targets = [f"{gs['root']}/source/secret", f"{gs['root']}/source/run_autograder",
               f"{gs['package_dir']}/sandbox/client.py", f"{gs['package_dir']}/assignments/graphs/__init__.py",
               f"{gs['root']}/results"]
    assert all(os.path.exists(t) for t in targets[2:4]), targets  # the package's files: the probe can fail
    # Whatever it reaches makes the module fail to import: the score (12 only if nothing was reached) is
    # the evidence, whatever the report shows of the student's output.
    hostile = (root / "reference" / "graphs.py").read_text() + f"""
import os
_reached = []
for _path in {targets!r}:
    try:
        open(_path).read(1) if os.path.isfile(_path) else os.listdir(_path)
        _reached.append("read " + _path)
    except OSError:
        pass
    try:
        with open(os.path.join(_path if os.path.isdir(_path) else os.path.dirname(_path), "planted.txt"), "w") as _f:
            _f.write("x")
        _reached.append("wrote " + _path)
    except OSError:
        pass
if _reached:
    raise RuntimeError("REACHED " + "; ".join(_reached))
"""
    data, run = _run_in_gradescope_root(gs, {"graphs.py": hostile.encode()})
    text = json.dumps(data)
    assert "REACHED" not in text and "course-secret-42" not in text
    assert not os.path.exists(f"{gs['root']}/results/planted.txt")
    assert not os.path.exists(f"{gs['root']}/source/planted.txt")
    # Correct code otherwise: its points stand (the reads failed quietly in the student's own process).
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(12, abs=1e-6), run.stdout[-3000:]


def test_make_gradescope_names_the_assignment(root, tmp_path):
    """`make gradescope` (listed in `make help`) failed: -a is required. ASSIGNMENT names it; without it,
    make says so (the variable's default is the notebook target's, never a silent choice)."""
    import shutil
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy2(root / name, tmp_path / name)
    stamp = root / ".venv" / ".installed"
    if not stamp.exists():
        pytest.skip("make's virtual environment is not installed here")
    make = ["make", "-f", str(root / "Makefile"), f"BIN={root / '.venv' / 'bin'}", f"STAMP={stamp}"]
    env = {**os.environ, "AUTOGRADER_SECRET": "course-secret-42"}
    env.pop("ASSIGNMENT", None)
    run = subprocess.run(make + ["gradescope"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode != 0 and "make gradescope ASSIGNMENT=" in run.stdout + run.stderr
    run = subprocess.run(make + ["gradescope", "ASSIGNMENT=graphs"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    with zipfile.ZipFile(tmp_path / "autograder-graphs.zip") as zf:
        assert "-a graphs" in zf.read("run_autograder").decode()


def test_run_autograder_leaves_a_development_install_alone(package, root, tmp_path):
    """run_autograder (as root) protects the package only where Gradescope installs it (under ROOT): run
    from this checkout's editable install, the checkout keeps its modes."""
    before = {p: p.stat().st_mode for p in [root / "autograder", *sorted((root / "autograder").glob("*.py"))[:5]]}
    run_autograder(package, tmp_path, {"graphs.py": (root / "reference" / "graphs.py").read_bytes()})
    assert {p: p.stat().st_mode for p in before} == before
