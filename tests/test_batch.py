"""grade-all on a generated class of 50 submissions (correct, written differently, buggy, broken, hostile):
killed with SIGKILL mid-way and resumed, every result exactly once and equal to grading that submission
alone; the same on a Dask cluster on loopback."""
import ast
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.integrations.batch import BatchError, cap_time_limits, content_hash, find_submissions, read_result, write_grades_csv
from autograder.core.exercise import Seeds
from autograder.core.submission import grade_path

ARGS = ["-a", "graphs", "--public-only", "--time-limit", "2"]  # small assignment, bounded hostile cases
TIME_LIMIT = 2.0

pytestmark = pytest.mark.xdist_group("batch")  # one worker runs these: they load the 2 cores on their own


def _mutate(source: str, old: str, new: str) -> str:
    assert old in source, old  # a mutation that no longer applies must fail loudly, not test nothing
    return source.replace(old, new, 1)


def variants(root):
    """name -> function(path) writing one submission of that kind at `path` (its suffix added)."""
    ref = (root / "reference" / "graphs.py").read_text()
    template = (root / "student_template" / "graphs.py").read_text()

    def folder(source, name="graphs.py"):
        def write(path):
            path.mkdir()
            (path / name).write_text(source)
            return path
        return write

    def zipped(members, suffix=".zip"):
        def write(path):
            path = path.with_suffix(suffix)
            with zipfile.ZipFile(path, "w") as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
            return path
        return write

    def notebook(path):
        nb = nbformat.v4.new_notebook()
        tree = ast.parse(ref)
        lines = ref.splitlines()
        nb.cells = [nbformat.v4.new_markdown_cell("# Computational graphs")] + [
            nbformat.v4.new_code_cell("\n".join(lines[node.lineno - 1: node.end_lineno])) for node in tree.body[1:]]
        nb.cells.append(nbformat.v4.new_code_cell("print(simple_graph(-2.0, 5.0, -4.0))"))
        path = path.with_suffix(".ipynb")
        path.write_text(nbformat.writes(nb))
        return path

    def not_a_zip(path):
        path = path.with_suffix(".zip")
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
        return path

    return {
        "correct": folder(ref),
        "correct_written_differently": folder(_mutate(_mutate(
            ref, "dW = torch.outer(dq, x)", "dW = dq[:, None] * x[None, :]"),
            "dx = W.T @ dq", "dx = torch.einsum('ij,i->j', W, dq)")),
        "correct_zip": zipped({"student/graphs.py": ref}),
        "correct_notebook": notebook,
        "buggy_missing_branch": folder(_mutate(ref, "dq = 2.0 * q", "dq = q")),
        "buggy_max_routes_wrong": folder(_mutate(ref, "if self.x >= self.y:", "if self.x <= self.y:")),
        "buggy_sigmoid": folder(_mutate(ref, "return (1.0 - self.s) * self.s * dout", "return (1.0 - self.s) * dout")),
        "template": folder(template),
        "not_a_zip": not_a_zip,
        "dotdot_zip": zipped({"../graphs.py": ref}),
        "missing_file": folder("nothing here\n", "README.txt"),
        "misnamed_file": folder(ref, "Graphs.py"),
        "infinite_loop": folder(_mutate(ref, "        return dout, dout\n", "        while True:\n            pass\n")),
        "sys_exit": folder("import sys\nsys.exit(3)\n" + ref),
        "kills_its_parent": folder(_mutate(ref, "        if self.x >= self.y:",
                                           "        import os\n        os.kill(os.getppid(), 9)\n"
                                           "        if self.x >= self.y:")),
    }


COUNTS = {"correct": 9, "correct_written_differently": 4, "correct_zip": 4, "correct_notebook": 3,
          "buggy_missing_branch": 3, "buggy_max_routes_wrong": 3, "buggy_sigmoid": 3, "template": 4,
          "not_a_zip": 3, "dotdot_zip": 3, "missing_file": 2, "misnamed_file": 2, "infinite_loop": 1,
          "sys_exit": 3, "kills_its_parent": 3}
assert sum(COUNTS.values()) == 50


@pytest.fixture(scope="module")
def population(root, tmp_path_factory):
    """50 submissions named s00..s49, kinds shuffled so hostile ones sit among the others."""
    base = tmp_path_factory.mktemp("class")
    makers = variants(root)
    kinds = [k for k, n in COUNTS.items() for _ in range(n)]
    random.Random(5).shuffle(kinds)
    classroom = base / "submissions"
    classroom.mkdir()
    kind_of = {}
    for i, kind in enumerate(kinds):
        makers[kind](classroom / f"s{i:02d}")
        kind_of[f"s{i:02d}"] = kind
    samples = base / "one-of-each"
    samples.mkdir()
    paths = {kind: makers[kind](samples / kind) for kind in COUNTS}
    return classroom, kind_of, paths


def normalized(result: dict, name: str) -> dict:
    """A result without what legitimately differs between two gradings of the same content: timings,
    the path and the id, the entry's `name` where a message quotes it, and where the code was when a
    timeout stopped it (an endless loop is stopped on whichever of its lines it is at)."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()
                    if k not in ("seconds", "submission", "student", "content_sha256", "where")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        if isinstance(obj, str):
            return re.sub(r"(did not finish within [\d.]+ s) \([^()]*, line \d+, in [^()]*\)", r"\1",
                          obj.replace(name, "<submission>"))
        return obj
    return strip(result)


@pytest.fixture(scope="module")
def single_grades(population, runner):
    """Each kind graded alone, the way `autograder grade` does."""
    from autograder.frontends.render import json_dict
    _, _, paths = population
    cap = lambda exs: cap_time_limits(TIME_LIMIT, exs)  # noqa: E731
    return {kind: normalized(json_dict(grade_path(path, ["graphs"], hidden=False, runner=runner, exercise_filter=cap)),
                             path.name)
            for kind, path in paths.items()}


def test_single_grades_tell_the_kinds_apart(single_grades):
    """What the 50-submission run is compared with is itself right: full marks for correct work however
    it arrives or is written, less for each bug, zero with a clear error for broken submissions."""
    score = {k: r["score"] for k, r in single_grades.items()}
    full = single_grades["correct"]["max_score"]
    assert full == 12
    for kind in ("correct", "correct_written_differently", "correct_zip", "correct_notebook"):
        assert score[kind] == full, (kind, single_grades[kind])
    for kind in ("buggy_missing_branch", "buggy_max_routes_wrong", "buggy_sigmoid", "infinite_loop",
                 "kills_its_parent"):
        assert 0 < score[kind] < full, kind
    assert score["template"] == score["sys_exit"] == 0
    for kind, text in (("not_a_zip", "not a valid zip"), ("dotdot_zip", "leaves its folder"),
                       ("missing_file", "no assignment files found"), ("misnamed_file", "Graphs.py")):
        assert score[kind] == 0 and text in single_grades[kind]["error"], kind
    by_id = lambda kind: {e["id"]: e for e in single_grades[kind]["exercises"]}  # noqa: E731
    # Hostile code costs only the exercises it ran in.
    killed = by_id("kills_its_parent")
    # The signal is refused (the student's code may signal only itself): that exercise errors.
    assert killed["graphs.MaxGate"]["score"] == 0 and "not permitted" in killed["graphs.MaxGate"]["message"]
    assert killed["graphs.l2_of_matvec"]["score"] == 3
    looped = by_id("infinite_loop")
    assert looped["graphs.AddGate"]["checks"][0]["verdict"] == "timeout"
    assert looped["graphs.MultiplyGate"]["score"] == 1
    assert "sys.exit(3)" in by_id("sys_exit")["graphs.AddGate"]["message"]


def _results(outdir):
    return {p.stem: json.loads(p.read_text()) for p in outdir.glob("*.json")}


def test_grade_all_killed_midway_resumes_without_loss_or_duplicates(population, single_grades, tmp_path):
    classroom, kind_of, _ = population
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "autograder", "grade-all", str(classroom), "-o", str(out), "-j", "2", *ARGS]
    # A TMPDIR of its own: any grade-all that starts elsewhere (another test, in parallel) rightly removes a
    # dead run's directory from the shared one, before this test could look for it.
    import tempfile
    private_tmp = Path(tempfile.mkdtemp(prefix="killed-run-"))
    os.chmod(private_tmp, 0o711)  # a sandbox user passes through to its run's folder, as through /tmp
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + 240
    try:
        while len(list(out.glob("*.json"))) < 12 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for progress, not waiting for a duration
    finally:
        import psutil
        family = psutil.Process(first.pid).children(recursive=True)
        assert family, "grade-all started no worker"
        os.kill(first.pid, signal.SIGKILL)  # grade-all alone: its workers must die with it
        first.wait()
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"left running after kill -9 of grade-all: {[(p.pid, p.name()) for p in alive]}"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 12 <= len(before) < 50, f"not killed mid-way: {len(before)} results"
    assert all(read_result(out / name) is not None for name in before)  # none half-written
    # grades.csv follows the results as they come: all of them but at most the one the kill interrupted.
    in_csv = [r.split(",")[0] for r in (out / "grades.csv").read_text().splitlines()[1:]]
    assert set(in_csv) <= {n[:-5] for n in before} and len(in_csv) >= len(before) - 1
    left = list(private_tmp.glob(f"autograder-grade-all-{first.pid}-*"))
    assert left, "the killed run's temporary directory (its workers' files) is where the next run finds it"

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(before)} of 50 already graded" in second.stderr
    assert second.stderr.count("] graded s") == 50 - len(before)  # plain log lines when not on a terminal
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name in before} == before
    assert not list(out.glob(".*tmp*"))
    assert not any(p.exists() for p in left)  # the next run removed what the killed one left
    assert not list(private_tmp.iterdir())  # and its own
    private_tmp.rmdir()

    results = _results(out)
    assert sorted(results) == sorted(kind_of)  # every submission exactly once
    for student, data in results.items():
        assert data["student"] == student
        assert normalized(data, Path(data["submission"]).name) == single_grades[kind_of[student]], student
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,score,max_score,graphs.AddGate")
    students = [r.split(",")[0] for r in rows[1:]]
    assert sorted(students) == sorted(kind_of) and len(set(students)) == 50


def test_grade_all_stopped_by_sigterm_or_sigint_cleans_up(population, tmp_path):
    """SIGTERM (a scheduler's stop) and SIGINT (Ctrl-C): no worker left, the run's temporary directory
    gone, grades.csv as complete as the results."""
    import psutil
    import tempfile
    classroom, _, _ = population
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"results-{sig.name}"
        cmd = [sys.executable, "-m", "autograder", "grade-all", str(classroom), "-o", str(out), "-j", "2", *ARGS]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while len(list(out.glob("*.json"))) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for progress, not waiting for a duration
        family = psutil.Process(proc.pid).children(recursive=True)
        run_dirs = list(Path(tempfile.gettempdir()).glob(f"autograder-grade-all-{proc.pid}-*"))
        assert run_dirs, "the run made no temporary directory of its own"
        proc.send_signal(sig)
        proc.wait(timeout=120)
        _, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, [(p.pid, p.name()) for p in alive]
        assert not any(p.exists() for p in run_dirs), sig
        results = {p.name[:-5] for p in out.glob("*.json")}
        in_csv = {r.split(",")[0] for r in (out / "grades.csv").read_text().splitlines()[1:]}
        assert results and in_csv == results, sig


SECRET = "batch-secret-7"


def _knows_the_hidden_cases(root, secret):
    """graphs.py whose AddGate is right only on the inputs of the public cases and of the hidden cases of
    `secret`: full marks on AddGate if and only if the grader built its hidden cases from that secret."""
    from autograder.assignments import exercises
    ex = next(e for e in exercises("graphs") if e.id == "graphs.AddGate")
    known = sorted({round(d, 6) for case in ex.cases(Seeds(hidden=True, secret=secret)) for d in case.inputs["dout"]})
    ref = (root / "reference" / "graphs.py").read_text()
    return _mutate(ref, "class AddGate:", f"KNOWN = {known!r}\n\n\nclass AddGate:") + \
        "\n\nclass AddGate(AddGate):\n    def backward(self, dout):\n" \
        "        return (dout, dout) if round(dout, 6) in KNOWN else (0.0, 0.0)\n"


def test_grade_all_on_a_dask_cluster_with_a_relative_root_and_a_secret(population, single_grades, root, tmp_path,
                                                                       monkeypatch):
    """The workers start elsewhere and without the secret; ROOT is relative to grade-all's directory."""
    from distributed import LocalCluster
    _, _, paths = population
    here = tmp_path / "course"
    (here / "few").mkdir(parents=True)
    chosen = ["correct", "correct_notebook", "buggy_missing_branch", "not_a_zip"]
    for kind in chosen:
        os.symlink(paths[kind], here / "few" / (kind + paths[kind].suffix))  # ROOT's entries may be links
    (here / "few" / "knows").mkdir()
    (here / "few" / "knows" / "graphs.py").write_text(_knows_the_hidden_cases(root, SECRET))
    monkeypatch.delenv("AUTOGRADER_SECRET", raising=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        run = subprocess.run([sys.executable, "-m", "autograder", "grade-all", "few", "-o", "out",
                              "--scheduler", cluster.scheduler_address, "-a", "graphs", "--time-limit", "2"],
                             capture_output=True, text=True, timeout=240, cwd=here,
                             env={**os.environ, "AUTOGRADER_SECRET": SECRET})
        assert run.returncode == 0, run.stderr[-3000:]
        assert "grade_one" in cluster.scheduler.task_prefixes  # graded by the cluster's workers
    results = _results(here / "out")
    assert sorted(results) == sorted(chosen + ["knows"])
    for kind in ("correct", "correct_notebook"):
        assert results[kind]["score"] == results[kind]["max_score"] == 12 and results[kind]["hidden"]
    assert 0 < results["buggy_missing_branch"]["score"] < 12
    assert results["not_a_zip"]["error"] and results["not_a_zip"]["max_score"] == 12  # 0 of 12, not 0/0
    knows = {e["id"]: e for e in results["knows"]["exercises"]}
    assert knows["graphs.AddGate"]["score"] == knows["graphs.AddGate"]["max_score"]  # the client's secret
    assert any(c["hidden"] for check in knows["graphs.AddGate"]["checks"] for c in check["cases"])


def test_grade_all_refuses_without_the_secret(tmp_path):
    (tmp_path / "root" / "a").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_SECRET"}
    run = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(tmp_path / "root"), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2 and "refusing to grade for credit" in run.stderr and "--public-only" in run.stderr
    assert not (tmp_path / "out").exists()


def test_submission_id_collisions_are_refused_naming_both(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "alice").mkdir()
    (root / "alice.zip").write_bytes(b"x")
    (root / "alice.ipynb").write_text("{}")
    (root / "bob smith").mkdir()
    (root / "bob_smith").mkdir()
    (root / "carol.ipynb").write_text("{}")
    with pytest.raises(BatchError) as refused:
        find_submissions(root)
    text = str(refused.value)
    for name in ("alice", "alice.zip", "alice.ipynb", "bob smith", "bob_smith"):
        assert str(root / name) in text
    assert "carol" not in text
    run = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(root), "-o", str(tmp_path / "out"),
                          "--public-only"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and str(root / "bob smith") in run.stderr and not (tmp_path / "out").exists()


def test_submission_ids_and_incomplete_results(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "alice").mkdir()
    (root / "bob smith.ipynb").write_text("{}")
    (root / ".DS_Store").write_text("")
    (root / "out").mkdir()
    subs = find_submissions(root, skip=(root / "out",))
    assert [s.student for s in subs] == ["alice", "bob_smith"]
    (tmp_path / "half.json").write_text('{"student": "x", "score": 1')
    assert read_result(tmp_path / "half.json") is None
    (tmp_path / "alice.json").write_text(json.dumps({"student": "alice", "score": 2, "max_score": 4, "exercises": [
        {"id": "graphs.AddGate", "score": 2}], "error": None}))
    text = write_grades_csv(tmp_path, ["alice", "half", "carol"]).read_text()
    assert text == "student,score,max_score,graphs.AddGate,error\nalice,2,4,2,\n"


def test_grades_csv_builds_each_row_once_and_writes_what_a_fresh_read_would(tmp_path, monkeypatch):
    """grades.csv is rewritten after every result: each write must equal the file built from the results on
    disk, while each student's row is built once (again only when its result or the columns change)."""
    from autograder.frontends import formats
    from autograder.integrations.batch import GradesCsv
    built, counting = [], [False]
    real_row = formats.csv_row
    monkeypatch.setattr(formats, "csv_row",
                        lambda student, *a: (built.append(student) if counting[0] else None) or real_row(student, *a))
    students = [f"s{i:02d}" for i in range(12)]

    def result(i, ids):
        return {"student": students[i], "score": i / 3, "max_score": 4, "error": None,
                "exercises": [{"id": e, "score": i % 3, "exact": {"score": f"{i % 3}/1"}} for e in ids]}
    run = tmp_path / "run"
    run.mkdir()
    csv = GradesCsv(run, students, {})
    for step, i in enumerate([5, 0, 11, 3, 7, 1, 9, 2, 4, 10, 6, 8]):
        data = result(i, ["graphs.AddGate", "graphs.MaxGate"] if step != 6 else ["graphs.AddGate", "graphs.extra"])
        (run / f"{students[i]}.json").write_text(json.dumps(data))
        csv.update(students[i], data)
        counting[0] = True
        written = csv.write().read_text()
        counting[0] = False
        assert written == write_grades_csv(run, students).read_text()  # read from the files, built afresh
    # one row per result, and the 7 rows of step 6 (a new column) once more: 6 + 7 + 5
    assert len(built) == 18 and built.count("s05") == 2 and built.count("s08") == 1
    csv.update("s03", result(3, ["graphs.AddGate"]))  # a regrade: that row only
    counting[0] = True
    csv.write()
    assert built[18:] == ["s03"]


class FlakyExecutor:
    """Stands for a pool whose worker process dies: `dies[student]` times, its future fails with
    BrokenProcessPool (as all futures of a dead pool do); then it returns a result."""

    def __init__(self, dies):
        self.dies, self.pools, self.graded = dict(dies), 1, []

    def submit(self, fn, path, student, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool
        future = Future()
        if self.dies.get(student, 0) > 0:
            self.dies[student] -= 1
            future.set_exception(BrokenProcessPool("a worker died"))
        else:
            self.graded.append(student)
            future.set_result({"student": student, "score": 1.0, "max_score": 1.0, "exercises": [], "error": None,
                               "content_sha256": content_hash(Path(path))})
        return future

    def broken(self, exc):
        from concurrent.futures.process import BrokenProcessPool
        self.pools += isinstance(exc, BrokenProcessPool)
        return isinstance(exc, BrokenProcessPool)

    def as_completed(self, futures):
        return list(futures)

    def close(self):
        pass


def test_a_dead_grading_process_is_retried_then_left_for_the_next_run(tmp_path):
    from autograder.integrations.batch import MAX_ATTEMPTS, run_batch
    root = tmp_path / "root"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
    flaky = FlakyExecutor({"a": 1, "b": MAX_ATTEMPTS})
    summary = run_batch(root, tmp_path / "out", executor=flaky, fancy=False, seeds=Seeds(hidden=False))
    assert summary.graded == 2 and list(summary.not_graded) == ["b"]  # a: retried and graded
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["a.json", "c.json"]  # b: no result
    again = run_batch(root, tmp_path / "out", executor=FlakyExecutor({}), fancy=False, seeds=Seeds(hidden=False))
    assert (again.skipped, again.graded, again.not_graded) == (2, 1, {})
    assert (tmp_path / "out" / "grades.csv").read_text().count("\n") == 4


def test_a_submission_replaced_since_its_grade_is_graded_again(tmp_path):
    from autograder.integrations.batch import run_batch
    root = tmp_path / "root"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "graphs.py").write_text("x = 1\n")
    run_batch(root, tmp_path / "out", executor=FlakyExecutor({}), fancy=False, seeds=Seeds(hidden=False))
    (root / "b" / "graphs.py").write_text("x = 2\n")   # replaced in ROOT after its grade
    again = FlakyExecutor({})
    summary = run_batch(root, tmp_path / "out", executor=again, fancy=False, seeds=Seeds(hidden=False))
    assert again.graded == ["b"] and (summary.skipped, summary.graded) == (1, 1)
    assert read_result(tmp_path / "out" / "b.json")["content_sha256"] == content_hash(root / "b")


def test_truths_are_computed_once_per_run_and_read_by_the_workers(root, tmp_path, monkeypatch):
    """grade-all computes the cases and truths once (they depend on the seeds only) into a private directory
    of the run; a worker reads them from there instead of computing them again, and the directory (hidden
    truths included) is gone when the run ends. The run's own process never imports torch: the first worker
    computes them (the others wait on its lock)."""
    import shutil
    import tempfile
    import torch
    from autograder.integrations import batch
    from autograder.core import pipeline
    from autograder.assignments import exercises
    seeds = Seeds(hidden=True, secret="truths-once")
    truths = tmp_path / "truths"
    truths.mkdir()
    batch.prepare_truths(["graphs"], seeds, truths)
    assert len(list(truths.glob("*.pt"))) == len(exercises("graphs"))
    # Doctor AddGate's truths on disk: a worker that reads them (and does not compute) grades the reference wrong.
    entry = pipeline._cache_entry(truths, exercises("graphs")[0], seeds)
    prepared = torch.load(entry, weights_only=False)
    torch.save([(case, {k: v + 1 for k, v in truth.items()}) for case, truth in prepared], entry)
    monkeypatch.setattr(pipeline, "_PREPARED", {})
    sub = tmp_path / "ref"
    sub.mkdir()
    shutil.copy(root / "reference" / "graphs.py", sub / "graphs.py")
    data = batch.grade_one(str(sub), "ref", ["graphs"], seeds, TIME_LIMIT, False, {}, str(truths))
    scores = {ex["id"]: ex["score"] for ex in data["exercises"]}
    assert scores["graphs.AddGate"] == 0 and scores["graphs.MultiplyGate"] == 1
    # And run_batch leaves no truths behind.
    monkeypatch.setattr(pipeline, "_PREPARED", {})
    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    root_dir = tmp_path / "subs"
    root_dir.mkdir()
    shutil.copytree(sub, root_dir / "ref")
    summary = batch.run_batch(root_dir, tmp_path / "out", jobs=1, assignments=["graphs"], seeds=seeds,
                              progress=False, time_limit=TIME_LIMIT)
    assert summary.graded == 1
    assert json.loads((tmp_path / "out" / "ref.json").read_text())["score"] == 12
    truth_dirs = [Path(d) for d in made if Path(d).name.startswith("truths-")]
    assert len(truth_dirs) == 1 and not truth_dirs[0].exists()
    # inside the run's folder, which the next run removes after a SIGKILL
    assert truth_dirs[0].parent.name.startswith(f"{batch.RUN_TMP_PREFIX}{os.getpid()}-")
    # The same run in a fresh process: graded by its worker, with torch never imported by the run's process.
    import subprocess
    import sys
    code = ("import json, sys; from pathlib import Path; from autograder.integrations.batch import run_batch; "
            "from autograder.core.exercise import Seeds; "
            "s = run_batch(Path(sys.argv[1]), Path(sys.argv[2]), jobs=1, assignments=['graphs'], "
            "seeds=Seeds(hidden=True, secret='truths-once'), progress=False, time_limit=5.0); "
            "print(json.dumps([s.graded, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, str(root_dir), str(tmp_path / "out-fresh")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1, False]
    assert json.loads((tmp_path / "out-fresh" / "ref.json").read_text())["score"] == 12


def test_a_run_whose_workers_cannot_start_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    """The run's temporary folder is the workers' TMPDIR while it runs; a run that fails before grading (no
    scheduler at that address, no pool) must not leave TMPDIR pointing at a folder it removes, or every later
    run in this process would put its files somewhere nobody cleans."""
    import tempfile

    from autograder.integrations import batch
    from autograder.core.exercise import Seeds
    root = tmp_path / "subs"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "graphs.py").write_text("")

    def no_workers(*args, **kwargs):
        raise RuntimeError("no workers")
    monkeypatch.setattr(batch, "PoolExecutor", no_workers)
    before, cached = os.environ.get("TMPDIR"), tempfile.tempdir
    with pytest.raises(RuntimeError, match="no workers"):
        batch.run_batch(root, tmp_path / "out", jobs=1, seeds=Seeds(hidden=False), fancy=False)
    assert os.environ.get("TMPDIR") == before and tempfile.tempdir == cached
    assert not list(Path(tempfile.gettempdir()).glob(f"{batch.RUN_TMP_PREFIX}{os.getpid()}-*"))
