"""Nothing of one submission reaches the next one graded by the same worker.

Submission A (tests/hostile/cross/: the graphs reference plus an attack) tampers with everything of the
execution layer it can reach: the permissions and contents of /tmp, /dev/shm and its scratch, files holding
the (hidden) inputs it was given, made hard to remove; the server's limits, priority, affinity and memory;
processes, threads, sockets, descriptors, System V IPC and keyrings meant to outlive it. Submission B (the
reference plus a probe that prints what its process sees) is then graded by the same worker, and must get
exactly the grade it gets alone, and see exactly what it sees alone.

Through the public command line (`autograder grade-all`), under each mechanism this machine has (bubblewrap;
the dedicated user, with a throwaway user made by the test as root), with --jobs 1, --jobs 2 and on a Dask
LocalCluster.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_isolation import Mechanism, user_mechanism  # noqa: F401  (the dedicated-user fixture)

ROOT = Path(__file__).resolve().parent.parent
CROSS = ROOT / "tests" / "hostile" / "cross"
REFERENCE = ROOT / "reference" / "graphs.py"
ATTACKS = ("tmp_permissions", "leftover_files", "server_limits", "processes_and_ipc")
SECRET = "cross-submission-secret"

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandboxes are Linux's"),
              pytest.mark.xdist_group("isolation")]

# Every input of A's gates and graph functions goes through its attacks' `_leak` (hidden cases' included).
WIRING = '''

def _wired(function):
    def wired(*args, **kwargs):
        for leak in _LEAKS:
            try:
                leak((args[1:] if args and not isinstance(args[0], (int, float)) else args, kwargs))
            except BaseException:
                pass
        return function(*args, **kwargs)
    return wired


for _gate in (AddGate, MultiplyGate, MaxGate, SigmoidGate):
    _gate.forward = _wired(_gate.forward)
simple_graph = _wired(simple_graph)
sigmoid_neuron = _wired(sigmoid_neuron)
l2_of_matvec = _wired(l2_of_matvec)
'''


@pytest.fixture(scope="module", params=["bwrap", "user"])
def mechanism(request):
    if request.param == "bwrap":
        from autograder.sandbox.mechanisms import _bwrap_works
        why = _bwrap_works()
        if why:
            pytest.skip(why)
        return Mechanism("bwrap", sys.executable, {"AUTOGRADER_SANDBOX": "bwrap"})
    return request.getfixturevalue("user_mechanism")


def attacker(folder: Path, attacks, tag: str) -> Path:
    folder.mkdir(parents=True)
    code = REFERENCE.read_text() + f"\n\nTAG = {tag!r}\n_LEAKS = []\n"
    for name in attacks:
        code += "\n" + (CROSS / f"{name}.py").read_text().replace("def _leak(", f"def _leak_{name}(")
        code += f"\n_LEAKS.append(_leak_{name})\n"
    (folder / "graphs.py").write_text(code + WIRING)
    return folder


def victim(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "graphs.py").write_text(REFERENCE.read_text() + "\n\n" + (CROSS / "victim_probe.py").read_text())
    return folder


def grade_all(mech: Mechanism, root: Path, out: Path, jobs: int = 1) -> dict[str, dict]:
    env = {**os.environ, **mech.env, "AUTOGRADER_SECRET": SECRET}
    done = subprocess.run([mech.python, "-m", "autograder", "grade-all", str(root), "-o", str(out), "--jobs",
                           str(jobs), "-a", "graphs"], env=env, capture_output=True, timeout=900, cwd=ROOT)
    text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, text[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def probes(result: dict) -> list[str]:
    """What B's process saw, case by case (the PROBE lines of its public output)."""
    return [line for ex in result["exercises"] for line in ex.get("output", "").splitlines()
            if line.startswith("PROBE ")]


def grade_summary(result: dict) -> list:
    return [(ex["id"], ex["score"], [(c["name"], c["verdict"], c["points"]) for c in ex["checks"]])
            for ex in result["exercises"]]


@pytest.fixture(scope="module")
def solo(mechanism, tmp_path_factory) -> dict:
    """B graded alone (a fresh worker): what it must get and see after any A."""
    base = tmp_path_factory.mktemp(f"solo-{mechanism.name}")
    victim(base / "subs" / "b-victim")
    result = grade_all(mechanism, base / "subs", base / "out")["b-victim"]
    assert result["score"] == result["max_score"] == 12, [(ex["id"], ex["message"], ex.get("output", "")[-500:])
                                                          for ex in result["exercises"] if ex["score"] < ex["max_score"]]
    assert len(probes(result)) >= 7, "the probe did not run"
    return result


def assert_same_as_solo(got: dict, solo: dict, tag: str) -> None:
    assert grade_summary(got) == grade_summary(solo)
    assert got["score"] == solo["score"]
    seen, alone = probes(got), probes(solo)
    assert set(seen) == set(alone), "B saw something it does not see alone:\n" + "\n".join(
        sorted(set(seen) - set(alone)))[:3000]
    assert tag not in json.dumps(got), "something of A reached B's result"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("attack", ATTACKS)
def test_the_next_submission_on_the_same_worker_gets_its_solo_grade(mechanism, solo, attack, tmp_path):
    tag = "xs" + os.urandom(5).hex()
    attacker(tmp_path / "subs" / "a-attacker", [attack], tag)
    victim(tmp_path / "subs" / "b-victim")
    results = grade_all(mechanism, tmp_path / "subs", tmp_path / "out", jobs=1)
    assert f"ATTACK-RAN {attack}" in json.dumps(results["a-attacker"]), "the attack did not run"
    assert_same_as_solo(results["b-victim"], solo, tag)


@pytest.mark.timeout(900)
def test_the_same_with_two_jobs(mechanism, solo, tmp_path):
    """Two workers, each grading an attacker first (every attack at once), then victims."""
    tag = "xs" + os.urandom(5).hex()
    for i in range(2):
        attacker(tmp_path / "subs" / f"a{i}-attacker", ATTACKS, tag)
    for i in range(4):
        victim(tmp_path / "subs" / f"b{i}-victim")
    results = grade_all(mechanism, tmp_path / "subs", tmp_path / "out", jobs=2)
    assert len(results) == 6
    for i in range(4):
        assert_same_as_solo(results[f"b{i}-victim"], solo, tag)


DASK_SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from distributed import LocalCluster
    from autograder.integrations.batch import run_batch
    from autograder.core.exercise import Seeds
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        summary = run_batch(root, out, scheduler=cluster.scheduler_address, assignments=["graphs"],
                            seeds=Seeds.for_credit(), progress=False)
    print(json.dumps({"graded": summary.graded, "not_graded": summary.not_graded}))
''')


@pytest.mark.timeout(900)
def test_the_same_on_a_dask_cluster(mechanism, solo, tmp_path):
    pytest.importorskip("distributed")
    tag = "xs" + os.urandom(5).hex()
    attacker(tmp_path / "subs" / "a-attacker", ATTACKS, tag)
    victim(tmp_path / "subs" / "b-victim")
    env = {**os.environ, **mechanism.env, "AUTOGRADER_SECRET": SECRET}
    done = subprocess.run([mechanism.python, "-c", DASK_SCRIPT, str(tmp_path / "subs"), str(tmp_path / "out")],
                          env=env, capture_output=True, timeout=900, cwd=ROOT)
    text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, text[-3000:]
    summary = json.loads(re.findall(r"^\{.*\}$", done.stdout.decode(), re.M)[-1])
    assert summary == {"graded": 2, "not_graded": {}}
    result = json.loads((tmp_path / "out" / "b-victim.json").read_text())
    assert "ATTACK-RAN" in (tmp_path / "out" / "a-attacker.json").read_text()
    assert_same_as_solo(result, solo, tag)


CONCURRENT_SCRIPT = textwrap.dedent('''
    import json, os
    from pathlib import Path
    from autograder.sandbox import Runner
    sub = Path(os.environ["SUB"])
    runners = [Runner("user"), Runner("user")]
    out = []
    for r in runners:
        got = r.run(sub, "mod", "tests.core_drivers:call", {}, time_limit=20, memory_mb=2048)
        out.append([r.mechanism.name, r.isolated, r.mechanism.uid, got.status, got.outputs.get("out")])
    for r in runners:
        r.close()
    third = Runner("user")  # a released uid is claimed again
    out.append([third.mechanism.uid])
    third.close()
    print(json.dumps(out))
''')


@pytest.mark.timeout(600)
def test_concurrent_runners_in_user_mode_never_share_a_uid(user_mechanism, tmp_path):
    """Two runners alive at once (grade-all's workers, two courses' nbgrader runs) each hold their own uid,
    verified as itself, and their children run as it; a uid is free again once its runner closes."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "mod.py").write_text("import os\ndef f():\n    return float(os.getuid())\n")
    env = {**os.environ, **user_mechanism.env, "SUB": str(sub)}
    done = subprocess.run([user_mechanism.python, "-c", CONCURRENT_SCRIPT], env=env, capture_output=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    (a, b, third) = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert a[:2] == b[:2] == ["user", True]
    assert a[2] != b[2] and a[2] == user_mechanism.uid
    assert a[3:] == ["ok", float(a[2])] and b[3:] == ["ok", float(b[2])]  # each child runs as its runner's uid
    assert third == [a[2]]
