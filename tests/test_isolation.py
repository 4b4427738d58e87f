"""Hostile submissions, graded through the public command line (`autograder grade --format json` in a
subprocess) under every isolation mechanism this machine has. Each is contained: no score above an honest
wrong submission's, no secret, hidden input or reference text in any output, nothing written outside its
scratch, no process left behind, no hang (pytest-timeout).

The attacks live in tests/hostile/: each defines `attack(gate, dout)`, installed as the graphs template's
`AddGate.backward` and `MultiplyGate.backward`, and prints `ATTACK-RAN` and what it found on the public
cases, whose output the student sees.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import pwd
import re
import shutil
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
TEMPLATE = ROOT / "student_template" / "graphs.py"
TEST_USER = "autograder-test"

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandboxes are Linux's"),
              pytest.mark.xdist_group("isolation")]


@dataclass
class Mechanism:
    name: str
    python: str
    env: dict
    uid: int | None = None
    baseline: dict = field(default_factory=dict)


# -- the mechanisms ---------------------------------------------------------------------------------------

def _runs_as(user: str, python: str) -> bool:
    try:
        return subprocess.run([python, "-s", "-c", "import torch"], user=user, extra_groups=[], cwd="/",
                              capture_output=True, timeout=180).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def user_mechanism():
    """The dedicated-user mechanism: a system user made for the test, an interpreter it can run, and the
    grader's files (this checkout's autograder/ and reference/) made unreadable to it while the tests run."""
    if os.geteuid() != 0:
        pytest.skip("the dedicated-user mechanism needs the grader to run as root")
    # One test process at a time (pytest-xdist ignores xdist_group here): the test user's processes and the
    # checkout's file modes are machine-wide, so another worker's tests would see ours and undo our modes.
    lock = open(os.path.join(tempfile.gettempdir(), "autograder-test-user-mechanism.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield from _user_mechanism()
    finally:
        lock.close()


def _user_mechanism():
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                              capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create the test user {TEST_USER}: {made.stderr.decode(errors='replace').strip()}")
    python, made_dir = sys.executable, None
    if not _runs_as(TEST_USER, python):
        # This interpreter sits where that user cannot go (e.g. /root/.pyenv). The system's Python of the same
        # version, with this environment's site-packages, is the same runtime for the test's purpose.
        base = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
        if not base:
            pytest.skip(f"{python} is not runnable by an unprivileged user and no system "
                        f"python{sys.version_info.major}.{sys.version_info.minor} exists")
        made_dir = tempfile.mkdtemp(prefix="autograder-userpy-")
        os.chmod(made_dir, 0o755)
        subprocess.run([base, "-m", "venv", "--without-pip", f"{made_dir}/venv"], check=True, capture_output=True)
        pth = Path(made_dir, "venv", "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                   "site-packages", "grader-runtime.pth")
        pth.write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()))
        subprocess.run(["chmod", "-R", "a+rX", made_dir], check=True)
        python = f"{made_dir}/venv/bin/python"
        if not _runs_as(TEST_USER, python):
            shutil.rmtree(made_dir, ignore_errors=True)
            pytest.skip(f"no Python runtime here that user {TEST_USER} can run with torch")
    modes = {p: os.stat(p).st_mode & 0o7777 for p in (ROOT / "autograder", ROOT / "reference") if p.exists()}
    for p, mode in modes.items():
        os.chmod(p, mode & ~0o007)
    try:
        yield Mechanism("user", python, {"AUTOGRADER_SANDBOX": "user", "AUTOGRADER_SANDBOX_USER": TEST_USER},
                        uid=pwd.getpwnam(TEST_USER).pw_uid)
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["bwrap", "user"])
def mechanism(request):
    if request.param == "bwrap":
        from autograder.sandbox.mechanisms import _bwrap_works
        why = _bwrap_works()
        if why:
            pytest.skip(why)
        return Mechanism("bwrap", sys.executable, {"AUTOGRADER_SANDBOX": "bwrap"})
    return request.getfixturevalue("user_mechanism")


# -- one hostile submission, graded -----------------------------------------------------------------------

@dataclass
class World:
    """What a submission must not reach or change, and where its grade goes."""
    tmp: Path
    secret: str
    sibling: Path
    results: Path
    tag: str


@pytest.fixture
def world(tmp_path) -> World:
    sibling = tmp_path / "other-student"
    sibling.mkdir()
    shutil.copy(TEMPLATE, sibling / "graphs.py")
    results = tmp_path / "results"
    results.mkdir()
    return World(tmp_path, "s3cr3t-" + os.urandom(12).hex(), sibling, results, "hb" + os.urandom(4).hex())


def _submission(world: World, attack: str, targets: dict) -> Path:
    sub = world.tmp / f"sub-{attack}"
    sub.mkdir(exist_ok=True)
    code = TEMPLATE.read_text() + f"\n\nTARGETS = {targets!r}\n\n" + (HOSTILE / f"{attack}.py").read_text() + \
        "\n\nAddGate.backward = attack\nMultiplyGate.backward = attack\n"
    (sub / "graphs.py").write_text(code)
    return sub


def _run_cli(mech: Mechanism, world: World, sub: Path, command: str = "grade") -> tuple[dict | None, str]:
    out = world.results / "result.json"
    env = {**os.environ, **mech.env, "AUTOGRADER_SECRET": world.secret,
           "AUTOGRADER_PROTECT": str(world.sibling)}
    args = [mech.python, "-m", "autograder", command, str(sub), "-a", "graphs"]
    if command == "grade":
        args += ["--format", "json", "-o", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, timeout=280, cwd=ROOT)
    text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    result = None
    if command == "grade":
        assert done.returncode == 0, text[-3000:]
        text += out.read_text()
        result = json.loads(out.read_text())
    return result, text


def _baseline(mech: Mechanism, world: World) -> float:
    """An honest wrong submission's score: the template, nothing filled in."""
    if "score" not in mech.baseline:
        sub = world.tmp / "honest"
        sub.mkdir()
        shutil.copy(TEMPLATE, sub / "graphs.py")
        result, _ = _run_cli(mech, world, sub)
        mech.baseline["score"] = result["score"]
    return mech.baseline["score"]


# -- what containment means -------------------------------------------------------------------------------

def _hidden_values(secret: str) -> list[str]:
    """Text that would show a hidden case's inputs: each float as Python prints it, each tensor's bytes (its
    raw bytes on the wire) in base64."""
    import base64
    from autograder.runtime import wire
    from autograder.assignments import exercises
    from autograder.core.exercise import Seeds
    out = set()

    def walk(value):
        if isinstance(value, float):
            out.add(repr(value))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif hasattr(value, "shape"):
            data = base64.b64encode(wire.encode(value)["__tensor__"]["data"]).decode("ascii")
            out.add(data[:40])
            for v in value.flatten().tolist():
                walk(float(v))

    cases = [case for ex in exercises("graphs") for case in ex.cases(Seeds(hidden=True, secret=secret))]
    for case in cases:
        if not case.hidden:
            walk(case.inputs)
    public = set(out)  # a value that is also a public input (6 decimals: it happens) is no evidence of a leak
    out.clear()
    for case in cases:
        if case.hidden:
            walk(case.inputs)
    return sorted(v for v in out - public if len(v.lstrip("-")) >= 8)  # 6 decimals: no accidental match


def _reference_lines() -> list[str]:
    text = (ROOT / "reference" / "graphs.py").read_text()
    lines = []
    for block in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", text, re.S):
        lines += [line.strip() for line in block.splitlines() if len(line.strip()) >= 12]
    return lines + ["### BEGIN SOLUTION"]


def _tree(path: Path) -> dict:
    if not path.exists():
        return {}
    out = {}
    for p in sorted(path.rglob("*")):
        if "__pycache__" in p.parts:
            continue
        out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _site_packages() -> dict:
    out = {}
    for d in site.getsitepackages():
        for p in sorted(Path(d).iterdir()):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.suffix == ".pth" or \
                p.name.startswith("__editable__") and p.is_file() else "entry"
    return out


def _snapshot(world: World, sub: Path) -> dict:
    return {"autograder": _tree(ROOT / "autograder"), "reference": _tree(ROOT / "reference"),
            "tests": _tree(ROOT / "tests"), "template": _tree(ROOT / "student_template"),
            "site-packages": _site_packages(), "sibling": _tree(world.sibling), "submission": _tree(sub)}


def _strays(mech: Mechanism, world: World) -> list[str]:
    """Processes a finished grading left behind: the attack's tagged copies, the test user's processes, a
    bubblewrap whose private runtime directory is gone (its runner closed)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            uid = os.stat(f"/proc/{pid}").st_uid
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm == world.tag or (mech.uid is not None and uid == mech.uid):
            found.append(f"{pid} {comm} uid {uid}")
        if argv and argv[0].endswith(b"bwrap"):
            runtimes = [a.decode() for a in argv if a.endswith(b"/runtime") and not a.startswith(b"/sandbox")]
            if runtimes and not all(os.path.exists(r) for r in runtimes):
                found.append(f"{pid} bwrap of a closed runner")
    return found


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


def grade_hostile(mech: Mechanism, world: World, attack: str, **targets) -> tuple[dict, str]:
    """Grade the hostile submission and check everything containment means; (result, all output) for more."""
    baseline = _baseline(mech, world)
    targets = {"tag": world.tag, **targets}
    sub = _submission(world, attack, targets)
    before = _snapshot(world, sub)
    result, text = _run_cli(mech, world, sub)
    assert "ATTACK-RAN" in text, f"the attack did not run: {text[-2000:]}"
    assert result["score"] <= baseline, (result["score"], baseline)
    assert world.secret not in text
    # A number counts whole: '0.123355' inside a timing such as 0.1233551 is not that input, nor is it the
    # public input -0.123355.
    leaked = [v for v in _hidden_values(world.secret)
              if re.search(r"(?<![\w.-])" + re.escape(v) + r"(?![\w])", text)]
    assert not leaked, f"hidden inputs in the output: {leaked[:5]}"
    if mech.name == "bwrap":  # nothing of the machine is visible: no reference text from anywhere
        shown = [line for line in _reference_lines() if line in text]
        assert not shown, f"reference text in the output: {shown[:3]}"
    else:  # the dedicated user reads what the machine's modes allow (another world-readable clone, say;
        # README: protect those with AUTOGRADER_PROTECT), but nothing of this grader or another submission
        reached = re.findall(r"READ-OK (\S+)", text)
        protected = tuple(str(p) + "/" for p in (ROOT / "reference", ROOT / "autograder", world.tmp))
        ours = [path for path in reached if os.path.realpath(path).startswith(protected)]
        assert not ours, f"the grader's or another submission's files were read: {ours[:3]}"
    after = _snapshot(world, sub)
    changed = {k for k in before if before[k] != after[k]}
    assert not changed, f"written outside its scratch: {changed}"
    assert sorted(p.name for p in world.results.iterdir()) == ["result.json"]
    deadline, strays = time.monotonic() + 10, None
    while time.monotonic() < deadline and (strays := _strays(mech, world)):
        time.sleep(0.2)
    assert not strays, f"processes left behind: {strays}"
    return result, text


def _addgate(result: dict) -> dict:
    return next(e for e in result["exercises"] if e["id"] == "graphs.AddGate")


# -- the attacks ----------------------------------------------------------------------------------------------

def test_grader_modules_are_not_in_the_students_process(mechanism, world):
    _, text = grade_hostile(mechanism, world, "grader_modules")
    assert "held=[] imported=[]" in text


def test_frames_objects_and_memory_hold_no_hidden_inputs(mechanism, world):
    _, text = grade_hostile(mechanism, world, "frames_and_memory")
    assert re.search(r"ATTACK-RAN \d+ floats: -?\d", text)  # it did find its own public inputs


def test_reference_and_grader_source_are_unreachable(mechanism, world):
    paths = [str(ROOT / "reference" / "graphs.py"), str(ROOT / "autograder" / "compare.py"),
             str(ROOT / "autograder" / "assignments" / "graphs" / "__init__.py"), str(world.sibling / "graphs.py"),
             str(ROOT / "tests" / "test_isolation.py")]
    _, text = grade_hostile(mechanism, world, "read_grader_files", paths=paths)
    if mechanism.name == "bwrap":
        assert "read=0" in text  # nothing of the machine but the runtime (the tests' files included)
    assert "READ-OK " + paths[0] not in text and "READ-OK " + paths[3] not in text


def test_nothing_outside_its_scratch_is_writable(mechanism, world):
    write = [str(ROOT / "autograder" / "compare.py"), str(ROOT / "autograder" / "pwned.py"),
             str(ROOT / "reference" / "graphs.py"), str(world.sibling / "graphs.py"),
             str(world.results / "result.json"), str(world.results / "forged.json")]
    dirs = [str(ROOT / "autograder"), str(ROOT / "reference"), str(world.sibling), str(world.results),
            *site.getsitepackages()]
    _, text = grade_hostile(mechanism, world, "write_outside", write=write, dirs=dirs)
    assert "wrote=[]" in text


SHARED = ("/tmp", "/var/tmp", "/dev/shm")


def test_the_machines_shared_places_are_out_of_reach(mechanism, world):
    """/tmp, /var/tmp and /dev/shm are where two sandboxes graded at the same time could meet (a file, or a
    file's name, left for the other to read). A child sees none of what is there and leaves nothing there:
    bubblewrap gives it its own; the dedicated user is kept out by Landlock."""
    planted = []
    for place in SHARED:
        if os.path.isdir(place):
            path = os.path.join(place, world.tag + "-planted")
            Path(path).write_text("planted outside\n")
            os.chmod(path, 0o644)
            planted.append(path)
    try:
        _, text = grade_hostile(mechanism, world, "shared_places", places=list(SHARED))
    finally:
        for path in planted:
            os.unlink(path)
    assert "found=[]" in text and "planted outside" not in text
    if mechanism.name == "user":  # (in bubblewrap its own /tmp takes the file, and goes with the sandbox)
        assert "left=[]" in text
    left = [os.path.join(p, world.tag + "-from-child") for p in SHARED]
    assert not [p for p in left if os.path.exists(p)]


def test_the_servers_memory_is_out_of_reach(mechanism, world):
    _, text = grade_hostile(mechanism, world, "parent_memory")
    assert "got=[]" in text


def test_stopping_the_server_does_not_hang_grading(mechanism, world):
    result, _ = grade_hostile(mechanism, world, "stop_parent")
    assert _addgate(result)["score"] == 0


def test_killing_everything_it_may_signal_costs_only_its_own_cases(mechanism, world):
    result, _ = grade_hostile(mechanism, world, "kill_everything")
    assert len(result["exercises"]) == 7  # every exercise graded all the same


@pytest.mark.parametrize("variant", ["garbage", "huge", "deep", "odd"])
def test_forged_replies_are_refused(mechanism, world, variant):
    result, _ = grade_hostile(mechanism, world, "forged_reply", variant=variant)
    checks = _addgate(result)["checks"]
    assert checks and all(c["verdict"] == "error" for c in checks), checks


def test_terminal_control_text_comes_back_plain(mechanism, world):
    result, text = grade_hostile(mechanism, world, "terminal_text")
    assert "Total: 87/87" in text  # the student's text is there, as text
    bad = [s for s in _strings(result) if re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", s)]
    assert not bad, bad[:3]
    _, shown = _run_cli(mechanism, world, world.tmp / "sub-terminal_text", command="check")
    assert "full marks" in shown and "\x1b[2J" not in shown and "\x1b]0;" not in shown and "\r" not in shown


def test_fork_bomb_is_bounded_and_cleaned_up(mechanism, world):
    from autograder.sandbox.client import MAX_PROCESSES
    _, text = grade_hostile(mechanism, world, "fork_bomb")
    counts = [int(n) for n in re.findall(r"forked=(\d+)", text)]
    # Refused outright where seccomp filters work (x86_64, aarch64); else the process limit holds.
    assert counts and max(counts) == 0 if platform.machine() in ("x86_64", "aarch64") else max(counts) < MAX_PROCESSES


def test_sleeping_forever_times_out(mechanism, world):
    from autograder.assignments import exercises
    from autograder.core.exercise import Seeds
    add = next(ex for ex in exercises("graphs") if ex.entry == "AddGate")
    first = add.cases(Seeds(hidden=False))[0].inputs["dout"][0]
    result, _ = grade_hostile(mechanism, world, "sleep_forever", sleep_when=float(first))
    assert any(c["verdict"] == "timeout" for c in _addgate(result)["checks"])


def test_the_secret_is_nowhere_in_its_environment(mechanism, world):
    grade_hostile(mechanism, world, "environment")


def test_hidden_inputs_do_not_come_out(mechanism, world):
    result, text = grade_hostile(mechanism, world, "exfiltrate_hidden")
    hidden = [case for check in _addgate(result)["checks"] for case in check["cases"] if case["hidden"]]
    assert hidden and all(case["verdict"] == "error" for case in hidden)  # it ran (and raised) on them too


# -- the refusals -------------------------------------------------------------------------------------------

def test_grade_refuses_without_a_secret_or_without_isolation(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(TEMPLATE, sub / "graphs.py")
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_SECRET"}
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(sub), "-a", "graphs"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "AUTOGRADER_SECRET" in done.stderr and not done.stdout
    env.update(AUTOGRADER_SECRET="x", AUTOGRADER_SANDBOX="none")
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(sub), "-a", "graphs"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "--unsandboxed" in done.stderr and "bubblewrap" in done.stderr
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(sub), "-a", "graphs", "--unsandboxed"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "--unsandboxed: graded without isolation" in json.loads(done.stdout)["sandbox"]
    done = subprocess.run([sys.executable, "-m", "autograder", "check", str(sub), "-a", "graphs"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "not isolated" in " ".join(done.stdout.split())


def test_a_user_that_can_read_the_grader_is_refused(user_mechanism):
    """The dedicated user is verified, not trusted: a grader file it can read makes the runner refuse it,
    naming the path; the same user with the grader's files closed to it is accepted."""
    exposed = tempfile.mkdtemp(prefix="autograder-results-")
    os.chmod(exposed, 0o755)
    code = ("import sys; from autograder.sandbox import verify_user; "
            "print(verify_user(sys.argv[1], protect=sys.argv[2:])[2] or 'OK')")
    try:
        for protect, expected in (([exposed], f"{exposed} is readable by user {TEST_USER!r}"), ([], "OK")):
            done = subprocess.run([user_mechanism.python, "-c", code, TEST_USER, *protect], capture_output=True,
                                  text=True, timeout=180, cwd=ROOT)
            assert expected in done.stdout, done.stdout + done.stderr
    finally:
        os.rmdir(exposed)
