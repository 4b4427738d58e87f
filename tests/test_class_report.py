"""The class report: grade-all on a folder of submissions with mistakes planted in known counts writes a
report whose counts are those; the page renders in headless Chromium with the page's own script running and
nothing from a student's text running; 1,000 results take seconds."""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.frontends.class_report import CSV_NAME, HTML_NAME, write_class_report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

CHAIN = ("df_db = 3*cos(3*b) + 2.5*b**1.5", "df_db = cos(3*b) + 2.5*b**1.5")
NLL_SIGN = ("loss = -probs[label].log()", "loss = probs[label].log()")
# Markup that would run if a page put it in as HTML: each makes an element whose name is assembled at run time.
SCRIPT = "<script>document.body.appendChild(document.createElement('x-' + 'pwned'))</script>"
IMG = "<img src=x onerror=\"document.body.appendChild(document.createElement('x-' + 'onerror'))\">"
PLANTED = {"clean": 3, "chain": 4, "nll": 2, "both": 2}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _count(rows, group="everyone", **where) -> int:
    hits = [r for r in rows if r["group"] == group and all(r[k] == v for k, v in where.items())]
    assert len(hits) <= 1, hits
    return int(hits[0]["count"]) if hits else 0


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """grade-all (public cases, micrograd_exercises) on submissions made from reference/ with the catalogue's
    mistakes planted in known counts, one that crashes with markup in its exception text, and a roster."""
    base = tmp_path_factory.mktemp("class")
    subs, out = base / "subs", base / "out"
    reference = (ROOT / "reference" / "micrograd_exercises.py").read_text()
    edits = {"clean": [], "chain": [CHAIN], "nll": [NLL_SIGN], "both": [CHAIN, NLL_SIGN]}
    roster = ["student,section,ta,name"]
    for kind, n in PLANTED.items():
        for i in range(n):
            source = reference
            for old, new in edits[kind]:
                assert source.count(old) == 1
                source = source.replace(old, new)
            folder = subs / f"{kind}{i}"
            folder.mkdir(parents=True)
            (folder / "micrograd_exercises.py").write_text(source)
            roster.append(f"{kind}{i},{'A' if i % 2 else 'B'},ta{i % 2},Name {kind} {i}")
    hostile = subs / f"x{IMG}"
    hostile.mkdir()
    (hostile / "micrograd_exercises.py").write_text(f"raise RuntimeError({SCRIPT!r} + {IMG!r})\n")
    roster.append("absent0,A,ta0,Absent Student")
    (base / "roster.csv").write_text("\n".join(roster) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(subs), "-o", str(out), "-j", "1",
                           "--public-only", "-a", "micrograd_exercises"], capture_output=True, text=True, env=env,
                          timeout=900)
    print(f"grade-all on {sum(PLANTED.values()) + 1} submissions: {time.perf_counter() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    return base, out


def test_grade_all_writes_the_report_with_the_planted_counts(graded_class):
    base, out = graded_class
    assert (out / HTML_NAME).is_file() and (out / CSV_NAME).is_file()
    rows = _rows(out / CSV_NAME)
    chain = PLANTED["chain"] + PLANTED["both"]
    nll = PLANTED["nll"] + PLANTED["both"]
    n = sum(PLANTED.values()) + 1
    assert _count(rows, kind="mistake", exercise="micrograd_exercises.gradf", key="chain_rule_sin3b") == chain
    assert _count(rows, kind="mistake", exercise="micrograd_exercises.nll", key="nll_sign") == nll
    assert _count(rows, kind="mistake_pair", key="micrograd_exercises.gradf: chain_rule_sin3b + "
                                                 "micrograd_exercises.nll: nll_sign") == PLANTED["both"]
    assert _count(rows, kind="outcome", exercise="micrograd_exercises.gradf", check="df_db", key="wrong") == chain
    assert _count(rows, kind="outcome", exercise="micrograd_exercises.gradf", check="df_db", key="error") == 1
    assert _count(rows, kind="outcome", exercise="micrograd_exercises.gradf", check="df_da", key="right") == n - 1
    assert _count(rows, kind="first_wrong_step", exercise="micrograd_exercises.gradf", key="df_db") == chain
    # the score histogram (of 15 points: chain_rule_sin3b costs 1, nll_sign 2; the crash scores 0)
    bins = [r for r in rows if r["kind"] == "score_bin" and r["group"] == "everyone"]
    assert sum(int(r["count"]) for r in bins) == n
    assert _count(rows, kind="score_bin", exercise="micrograd_exercises", key="90-100%") == \
        PLANTED["clean"] + PLANTED["chain"]
    assert _count(rows, kind="score_bin", exercise="micrograd_exercises", key="80-90%") == \
        PLANTED["nll"] + PLANTED["both"]
    assert _count(rows, kind="score_bin", exercise="micrograd_exercises", key="0-10%") == 1
    page = (out / HTML_NAME).read_text()
    assert "d/db sin(3*b) = 3*cos(3*b)" in page            # the mistake's hint
    assert "truth" in page and "public case" in page        # an anonymised example with the truth
    assert "chain0" not in page and "Name chain" not in page  # no ids or names without --names


def test_roster_groups_absent_students_and_names(graded_class):
    base, out = graded_class
    report = base / "report"
    write_class_report(out, report, roster=base / "roster.csv")
    rows = _rows(report / CSV_NAME)
    assert _count(rows, kind="not_graded", key="did not submit") == 1
    in_a = sum(1 for kind, k in PLANTED.items() for i in range(k) if i % 2)
    both_a = sum(1 for i in range(PLANTED["both"]) if i % 2)
    chain_a = sum(1 for i in range(PLANTED["chain"]) if i % 2) + both_a
    assert _count(rows, group="section A", kind="mistake", key="chain_rule_sin3b") == chain_a
    assert _count(rows, group="section A", kind="not_graded", key="did not submit") == 1
    assert sum(int(r["count"]) for r in rows if r["group"] == "section A" and r["kind"] == "score_bin") == in_a
    page = (report / HTML_NAME).read_text()
    assert "Absent Student" not in page and "student #" in page
    write_class_report(out, report, roster=base / "roster.csv", names=True)
    assert "absent0 (Absent Student)" in (report / HTML_NAME).read_text()


def _chromium_dom(page: Path, tmp_path: Path) -> str:
    profile = tmp_path / "profile"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]
    dom = subprocess.run(args + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run(args + ["--window-size=1200,1600", f"--screenshot={tmp_path / 'report.png'}",
                                  page.as_uri()], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shot.returncode == 0 and (tmp_path / "report.png").stat().st_size > 10_000, shot.stderr[-2000:]
    return dom.stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium")
def test_page_renders_and_no_student_text_runs(graded_class, tmp_path):
    """A result merged from elsewhere carries markup in every string a student can reach (id, error, check,
    mistake, hint, example); with --names and a roster, the page renders, its own script runs (it hides all
    groups but the first), and none of the planted markup becomes an element."""
    base, out = graded_class
    merged = tmp_path / "merged"
    shutil.copytree(out, merged)
    sample = json.loads(next(p for p in sorted(merged.glob("chain*.json"))).read_text())
    evil = copy.deepcopy(sample)
    evil["student"] = f"s{IMG}"
    check = evil["exercises"][0]["checks"][1]
    check.update(name=f"db{SCRIPT}", mistake=f"m{IMG}", hint=f"h{SCRIPT}", case_label=f"c{IMG}",
                 example={"index": [[0]], "got": [f"{SCRIPT}"], "expected": [1.0]})
    evil["exercises"][0]["first_wrong_step"] = f"db{SCRIPT}"
    (merged / "evil.json").write_text(json.dumps(evil))
    broken = {"student": f"b{SCRIPT}", "error": f"could not unpack {IMG}", "exercises": [], "score": 0,
              "max_score": 15}
    (merged / "broken.json").write_text(json.dumps(broken))
    roster = (base / "roster.csv").read_text() + f"s{IMG},{SCRIPT},{IMG},{SCRIPT}\n"
    (tmp_path / "roster.csv").write_text(roster)
    page, _ = write_class_report(merged, tmp_path / "report", roster=tmp_path / "roster.csv", names=True)
    dom = _chromium_dom(page, tmp_path)
    print(f"screenshot: {tmp_path / 'report.png'}")
    assert "What the class got wrong" in dom and "chain_rule_sin3b" in dom
    assert "<x-pwned" not in dom and "<x-onerror" not in dom           # nothing planted ran
    assert "<img" not in dom and dom.count("<script>") == 1            # only the page's own script
    assert "&lt;script&gt;document.body" in dom                        # the text is there, as text
    assert 'data-group="1" style="display: none;"' in dom              # the page's own script did run


def test_a_thousand_results_take_seconds(graded_class, tmp_path):
    _, out = graded_class
    sample = json.loads(next(p for p in sorted(out.glob("both*.json"))).read_text())
    many = tmp_path / "many"
    many.mkdir()
    for i in range(1000):
        (many / f"s{i:04d}.json").write_text(json.dumps({**sample, "student": f"s{i:04d}"}))
    started = time.perf_counter()
    write_class_report(many)
    print(f"class report for 1000 results: {time.perf_counter() - started:.2f} s")
    rows = _rows(many / CSV_NAME)
    assert _count(rows, kind="mistake", exercise="micrograd_exercises.gradf", key="chain_rule_sin3b") == 1000
    assert _count(rows, kind="mistake", exercise="micrograd_exercises.nll", key="nll_sign") == 1000


def test_the_nbgrader_export_step_writes_the_class_report(tmp_path):
    """The course's export step (nbgrader_tools.course_class_report, run by the demo after `nbgrader export`
    and by `autograder nbgrader-class-report`): the submitted notebooks graded into one result each and the
    report, with the demo's planted mistake counted."""
    from autograder.integrations.nbgrader import tools as nbt
    from autograder.core.exercise import Seeds
    course = tmp_path / "course"
    nbt.make_course(course, ["micrograd_exercises"])
    for student, nb in nbt.demo_submissions(course, "micrograd_exercises").items():
        nbt.submit(course, "micrograd_exercises", student, nb)
    out = nbt.course_class_report(course, "micrograd_exercises", Seeds(hidden=False), jobs=1)
    assert {p.stem for p in out.glob("*.json")} == {"reference", "template", "one-mistake"}
    rows = _rows(out / CSV_NAME)
    assert _count(rows, kind="mistake", exercise="micrograd_exercises.gradf", key="chain_rule_sin3b") == 1
    assert _count(rows, kind="outcome", exercise="micrograd_exercises.nll", check="loss", key="not_implemented") == 1
    assert _count(rows, kind="outcome", exercise="micrograd_exercises.nll", check="loss", key="approx") == 2
    assert (out / HTML_NAME).is_file()


def test_malformed_results_are_named_not_fatal(tmp_path):
    """Results merged from anywhere: a file that is not JSON, JSON that is not a result, and a result whose
    fields have the wrong types are reported or skipped; the page and the CSV are still written."""
    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "odd.json").write_text(json.dumps({
        "student": {"a": 1}, "score": "NaN", "max_score": "inf", "error": None,
        "exercises": [5, {"id": 7}, {"id": "x.y", "score": "nan", "max_score": -1, "first_wrong_step": ["a"],
                                     "checks": [3, {"name": ["n"], "verdict": "weird", "mistake": "m",
                                                    "example": {"index": 3, "got": "x", "expected": None}}]}]}))
    page, table = write_class_report(tmp_path)
    rows = _rows(table)
    assert _count(rows, kind="not_graded", key="result file unreadable (JSONDecodeError)") == 1
    assert _count(rows, kind="not_graded", key="result file is not a grading result") == 1
    assert _count(rows, kind="outcome", exercise="x.y", check="['n']", key="error") == 1
    assert _count(rows, kind="mistake", exercise="x.y", key="m") == 1
    assert "What the class got wrong" in page.read_text()


def test_the_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.json").write_text(json.dumps({"student": "a", "exercises": [], "error": "no files"}))
    run = subprocess.run([sys.executable, "-m", "autograder", "class-report", str(tmp_path / "results"), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _count(_rows(tmp_path / "out" / CSV_NAME), kind="not_graded", key="could not be graded: no files") == 1
    for args, words in (([str(tmp_path / "nowhere")], "no such folder"),
                        ([str(tmp_path / "results"), "--roster", str(tmp_path / "results" / "a.json")],
                         "no student id column")):
        run = subprocess.run([sys.executable, "-m", "autograder", "class-report", *args], capture_output=True,
                             text=True, env=env, timeout=120)
        assert run.returncode == 2 and words in run.stderr, run.stderr


def test_examples_come_from_public_cases_only():
    """A wrong public case's numbers are kept next to the truth's (and survive the JSON); a hidden case's never."""
    import torch

    from autograder.core.compare import compare
    from autograder.core.exercise import Case
    from autograder.core.pipeline import _aggregate, value_example
    from autograder.core.result import result_from_dict, GradeResult, ExerciseResult

    truth = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    got = truth.clone()
    got[1, 0] = 9.0
    example = value_example(got, truth)
    assert example["index"][0] == [1, 0] and example["got"][0] == 9.0 and example["expected"][0] == 3.0
    wrong = compare("x", got, truth)
    wrong.details["example"] = example
    public, hidden = Case("public-0", False, {}), Case("hidden-0", True, {})
    check = _aggregate("x", [(public, wrong), (hidden, compare("x", truth, truth))], 1)
    assert check.example == example
    data = GradeResult("s", exercises=[ExerciseResult("a.b", "", 1, [check])]).to_dict()
    assert result_from_dict(data).exercises[0].checks[0].example == example
    hidden_only = _aggregate("x", [(public, compare("x", truth, truth)), (hidden, wrong)], 1)
    assert hidden_only.example is None and "example" not in hidden_only.to_dict()
