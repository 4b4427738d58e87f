"""Every front end renders the one result: the same pass/fail and points everywhere (local credit included),
exact points, a terminal report readable at 80 columns, the student's text shown as text, JUnit that
Jenkins' schema accepts, live progress in `check`."""
from __future__ import annotations

import base64
import io
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from markdown_it import MarkdownIt
from rich.console import Console

from autograder.core.compare import compare
from autograder.core.exercise import Case, Exercise
from autograder.frontends.formats import (csv_header, csv_row, fmt, fmt_diff, fmt_shape, gradescope_dict,
                                to_junit, to_markdown)
from autograder.core.pipeline import grade
from autograder.frontends.render import FORMATS, json_dict, leading_ones_only, to_terminal
from autograder.core.result import (FAILED, PASSED, PASSED_LOCALLY, CaseVerdict, CheckResult, ExerciseResult, GradeResult,
                               result_from_dict)

ROOT = Path(__file__).resolve().parent.parent


# -- a result built by hand: thirds, local credit, hidden cases, an exercise that could not run -----------

def _check(name, verdicts, max_points, *, label="public case 1, batch 3", **kw):
    """verdicts: [(hidden, verdict, local_verdict)]."""
    cases = [CaseVerdict(f"c{i}", h, v, lv, 0.5 if v == "wrong" else 1e-9) for i, (h, v, lv) in enumerate(verdicts)]
    from autograder.runtime.verdicts import worst
    return CheckResult(name=name, verdict=worst(*(v for _, v, _ in verdicts)),
                       local_verdict=kw.pop("local", None), maxdiff=kw.pop("maxdiff", 0.5), shape=[3, 4],
                       expected_shape=[3, 4], mistake=kw.pop("mistake", None), message=kw.pop("message", ""),
                       hint=kw.pop("hint", ""), max_points=max_points, cases=cases, case_label=label)


def by_hand() -> GradeResult:
    third = Fraction(1, 3)
    right = _check("right", [(False, "exact", "exact"), (True, "approx", "approx")], third)
    # Wrong against the truth on every case, right given its own upstream: full points.
    local = _check("local", [(False, "wrong", "approx"), (True, "wrong", "exact")], third, local="approx")
    # Right on the public case, wrong on the hidden one: half its points.
    half = _check("half", [(False, "approx", None), (True, "wrong", None)], third, mistake="scale",
                  hint="off by a constant factor", label="hidden case 1, batch 7")
    ex1 = ExerciseResult("toy.thirds", "thirds", 1, [right, local, half], first_wrong_step="half")
    # Partly local: one case right locally, one not at all -> failed, 1/2 of 0.25.
    partial = _check("partial", [(False, "wrong", "approx"), (False, "wrong", "wrong")], Fraction(1, 4))
    stub = _check("stub", [(False, "not_implemented", None)], Fraction(3, 4))
    ex2 = ExerciseResult("toy.other", "other", 1, [partial, stub], first_wrong_step="partial")
    ex3 = ExerciseResult("toy.crashed", "crashed", 2, [], message="did not finish within 5 s",
                         where="mod.py, line 3, in f")  # nothing ran: 0/2, not 0/0
    return GradeResult("sub", exercises=[ex1, ex2, ex3], hidden=True, sandbox="test")


def test_points_live_on_the_result_exactly():
    r = by_hand()
    ex1, ex2, ex3 = r.exercises
    assert [c.status for c in ex1.checks] == [PASSED, PASSED_LOCALLY, FAILED]
    assert [c.passed for c in ex1.checks] == [True, True, False]
    assert ex1.score == Fraction(5, 6) and ex1.max_score == 1 and ex1.fraction == Fraction(5, 6)
    assert [c.status for c in ex2.checks] == [FAILED, FAILED] and ex2.score == Fraction(1, 8)
    assert (ex3.score, ex3.max_score) == (0, 2)
    assert r.score == Fraction(5, 6) + Fraction(1, 8) and r.max_score == 4
    three_thirds = ExerciseResult("x.y", "", 1, [_check(n, [(False, "exact", None)], Fraction(1, 3)) for n in "abc"])
    assert three_thirds.score == 1  # exactly: no 0.999999


def _row_cells(md_line: str) -> list[str]:
    return [c.strip() for c in md_line.strip().strip("|").split(" | ")]


def renderings(r: GradeResult) -> dict:
    """Per front end: {(exercise id, check name): (passed, points text)} and the total it shows."""
    out = {}
    # JSON, and its round trip.
    data = json.loads(FORMATS["json"](r))
    out["json"] = ({(e["id"], c["name"]): (c["passed"], fmt(c["points"])) for e in data["exercises"] for c in e["checks"]},
                   fmt(data["score"]))
    back = result_from_dict(data)
    out["round trip"] = ({(e.id, c.name): (c.passed, fmt(c.points)) for e in back.exercises for c in e.checks},
                         fmt(back.score))
    assert back.score == r.score and back.max_score == r.max_score  # exactly
    # Gradescope: a check is passed when all its tests (public and hidden parts) are; points add up.
    gs = gradescope_dict(r)
    per = {}
    for t in gs["tests"]:
        if t["name"] == "submission":
            continue
        key = tuple(t["name"].replace(" (hidden cases)", "").split(": ", 1))
        ok, pts = per.get(key, (True, 0.0))
        per[key] = (ok and t["status"] == "passed", pts + t["score"])
    out["gradescope"] = ({k: (ok, fmt(p)) for k, (ok, p) in per.items()}, fmt(gs["score"]))
    # GitHub Classroom.
    # A check is reported as equal point units (so the reporter's table adds up): it passed when all of
    # its units did; its points are their sum.
    cl = json.loads(base64.b64decode(FORMATS["classroom"](r)))
    per = {}
    for t in cl["tests"]:
        if t["name"] == "submission":
            continue
        key = tuple(re.sub(r" \(point unit \d+/\d+\)$", "", t["name"]).split(": ", 1))
        ok, pts = per.get(key, (True, 0.0))
        per[key] = (ok and t["status"] == "pass", pts + t["score"])
    out["classroom"] = ({k: (ok, fmt(p)) for k, (ok, p) in per.items()}, fmt(sum(t["score"] for t in cl["tests"])))
    # JUnit: a failure or error element is a failed check; its points are in system-out.
    root = ET.fromstring(to_junit(r).encode())
    junit = {}
    for suite in root.findall("testsuite"):
        for case in suite.findall("testcase"):
            bad = case.find("failure") is not None or case.find("error") is not None
            points = case.find("system-out").text.split("\n")[0].removeprefix("points: ").split("/")[0]
            junit[(suite.get("name"), case.get("name"))] = (not bad, points)
    # (JUnit has no grand total; each suite's score property is its exercise's.)
    scores = {s.get("name"): next(p.get("value") for p in s.iter("property") if p.get("name") == "score")
              for s in root.findall("testsuite")}
    assert scores == {e.id: fmt(e.score) for e in r.exercises}
    out["junit"] = (junit, fmt(r.score))
    # Markdown.
    md = to_markdown(r)
    mdrows, current = {}, None
    for line in md.splitlines():
        if line.startswith("### "):
            current = line[4:].split(":")[0].replace("\\", "")
        elif line.startswith("| ") and not line.startswith("| check"):
            cells = _row_cells(line)
            mdrows[(current, cells[0])] = (cells[1].startswith("✅"), cells[4].split("/")[0])
    out["markdown"] = (mdrows, md.splitlines()[0].split(": ")[1].split("/")[0])
    # The terminal (wide, so a row is one line): the points column is the last cell of a row.
    console = Console(width=160, record=True, color_system=None)
    to_terminal(r, console)
    text = console.export_text()
    term, current = {}, None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if any(words[0] == e.id for e in r.exercises):
            current = words[0]
        ex = next((e for e in r.exercises if e.id == current), None)
        check = next((c for c in (ex.checks if ex else []) if c.name == words[0]), None)
        if check is not None and "/" in words[-1]:
            term[(current, check.name)] = (words[-1] == f"{fmt(check.max_points)}/{fmt(check.max_points)}",
                                           words[-1].split("/")[0])
    total = next(line for line in text.splitlines() if line.startswith("Total: "))
    out["terminal"] = (term, total.split()[1].split("/")[0])
    # CSV and nbgrader's grade-cell fraction: totals only.
    row = csv_row("s", json_dict(r), [e.id for e in r.exercises])
    out["csv total"] = row[1]
    # nbgrader: a grade cell grades one exercise; its partial credit is that exercise's fraction.
    from autograder.integrations.nbgrader.preprocessor import exercise_points  # nbgrader: seconds to import
    out["nbgrader fraction"] = {e.id: exercise_points(e) for e in r.exercises}
    return out


def assert_all_agree(r: GradeResult):
    expected = {(e.id, c.name): (c.passed, fmt(c.points)) for e in r.exercises for c in e.checks}
    seen = renderings(r)
    for name in ("json", "round trip", "gradescope", "classroom", "junit", "markdown", "terminal"):
        checks, total = seen[name]
        assert checks == expected, name
        assert total == fmt(r.score), name
    assert float(seen["csv total"]) == pytest.approx(float(r.score), abs=1e-4)
    assert seen["nbgrader fraction"] == pytest.approx({e.id: float(e.fraction) for e in r.exercises}, abs=1e-9)


def test_every_front_end_agrees_on_a_result_built_by_hand():
    r = by_hand()
    assert_all_agree(r)
    # Errors keep their maximum: the crashed exercise reads 0/2 everywhere.
    assert "toy.crashed: 0/2" in to_markdown(r)
    suite = next(s for s in ET.fromstring(to_junit(r).encode()).findall("testsuite") if s.get("name") == "toy.crashed")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")} == {"score": "0", "max_score": "2"}


# -- the same from a real graded submission -------------------------------------------------------------

def toy_cases(seeds):
    out = []
    for i, s in enumerate(seeds.public(2) + seeds.hidden_seeds("toy.local", 1)):
        g = torch.Generator().manual_seed(s)
        n = 3 + i
        out.append(Case(f"c{i}", i >= 2, {"args": {"x": torch.randn(n, 4, generator=g, dtype=torch.float64)}},
                        label=f"batch {n}"))
    return out


def toy_truth(case):
    x = case.inputs["args"]["x"]
    return {"double": 2 * x, "colsum": x.sum(0, keepdim=True), "rowmax": x.amax(1)}


def toy_judge(case, outputs, truth):
    """`colsum` is locally right when it is the column sum of the student's own `double` / 2."""
    results = [compare(name, outputs.get(name), t) for name, t in truth.items()]
    d = outputs.get("double")
    if isinstance(d, torch.Tensor) and d.shape == truth["double"].shape:
        results[1].local_verdict = compare("colsum", outputs.get("colsum"), (d / 2).sum(0, keepdim=True)).verdict
    return results


TOY = Exercise(id="toy.local", module="mod", entry="f", points=1, cases=toy_cases, driver="tests.core_drivers:call_dict",
               truth=toy_truth, judge=toy_judge)

LOCAL_CREDIT = """
    def f(x):
        d = 3 * x                      # wrong
        print("my debug line")
        return {"double": d, "colsum": (d / 2).sum(0, keepdim=True), "rowmax": x.amax(1)}
"""


def test_every_front_end_agrees_on_a_graded_submission(runner, tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent(LOCAL_CREDIT))
    r = grade(tmp_path, [TOY], hidden=True, runner=runner)
    double, colsum, rowmax = r.exercises[0].checks
    assert (double.status, colsum.status, rowmax.status) == (FAILED, PASSED_LOCALLY, PASSED)
    assert r.score == Fraction(2, 3) and r.max_score == 1  # two thirds exactly
    assert_all_agree(r)
    assert "my debug line" in r.exercises[0].output
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    text = console.export_text()
    assert "colsum: correct given its inputs (correct step, wrong upstream" in text
    assert "my debug line" in text


def test_the_row_describes_one_case_and_names_it(runner, tmp_path):
    """maxdiff, shape and hint come from the same (shown) case, and the report says which one."""
    (tmp_path / "mod.py").write_text(textwrap.dedent("""
        def f(x):
            d = 2 * x
            if x.shape[0] == 4:
                d = 3 * x  # wrong on the second public case only
            return {"double": d, "colsum": x.sum(0, keepdim=True), "rowmax": x.amax(1)}
    """))
    r = grade(tmp_path, [TOY], hidden=False, runner=runner)
    double = r.exercises[0].checks[0]
    wrong_case = next(c for c in double.cases if c.verdict == "wrong")
    assert double.case_label == "public case 2, batch 4"
    assert double.maxdiff == wrong_case.maxdiff and double.shape == [4, 4]
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    assert "public case 2, batch 4" in console.export_text()


def test_exact_points_on_a_real_exercise(runner):
    """graphs.MaxGate: its checks' thirds add up to exactly its point (it read 0.999999/1)."""
    from autograder.assignments import exercises
    ex = next(e for e in exercises("graphs") if e.id == "graphs.MaxGate")
    r = grade(ROOT / "reference", [ex], hidden=False, runner=runner)
    assert r.score == r.max_score == 1 and isinstance(r.score, Fraction)
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    assert "Total: 1/1" in console.export_text() and "0.99" not in console.export_text()


# -- 80 columns ---------------------------------------------------------------------------------------------

def _ninja_with_mistakes(tmp_path: Path) -> Path:
    src = (ROOT / "reference" / "backprop_ninja.py").read_text()
    start, end = src.index("def manual_backward(ctx):"), src.index("def cross_entropy_backward(")
    mutated = src[start:end].replace("    dprobs = (1.0 / probs) * dlogprobs", "    dprobs = (1.0 / probs) * dlogprobs * 1.5")
    assert mutated != src[start:end], "the reference's dprobs line moved: update the mutation"
    body = mutated
    sub = tmp_path / "ninja"
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text(src[:start] + body + src[end:])
    return sub


def _assert_whole_at_80(r: GradeResult):
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for ex in r.exercises:
        for c in ex.checks:
            if c.status == PASSED_LOCALLY and ex.first_wrong_step and "later steps" in text:
                continue
            # A long name may fold onto the next lines; the row's cells are on its first line.
            row = next((line for line in lines if line.split() and c.name.startswith(line.split()[0])
                        and len(line.split()) >= 4), None)
            assert row is not None, c.name
            for whole in (fmt_diff(c.maxdiff), fmt(c.points) + "/" + fmt(c.max_points)):
                assert whole in row, (c.name, whole, row)
            shape = fmt_shape(c.shape if c.shape is not None else c.expected_shape)
            compact = lambda text: text.replace(", ", ",").replace(" ≠ ", "≠")  # noqa: E731  a wide mismatch
            assert shape in row or compact(shape) in row, (c.name, shape, row)
            if c.shape is not None and c.shape != c.expected_shape:
                mark = "≈" if leading_ones_only(c.shape, c.expected_shape) else "≠"
                both = f"{fmt_shape(c.shape)} {mark} {fmt_shape(c.expected_shape)}"
                assert both in row or both.replace(", ", ",").replace(f" {mark} ", mark) in row, (both, row)
            if len(c.name) <= 16:  # a name is never broken (issue 17: "counts_sum_in" / "v")
                assert row.split()[0] == c.name, (c.name, row)
            # one verdict column: the verdict, or "correct step" where right given a wrong upstream
            if c.status == PASSED_LOCALLY:
                assert row.split()[1:3] == ["correct", "step"], row
            else:
                assert row.split()[1] == c.verdict, row
    return text


def test_a_real_report_is_whole_at_80_columns(runner, tmp_path):
    from autograder.assignments import exercises
    exs = [e for e in exercises("backprop_ninja") if e.entry == "manual_backward"]
    r = grade(_ninja_with_mistakes(tmp_path), exs, hidden=False, runner=runner)
    ex = r.exercises[0]
    assert ex.first_wrong_step == "probs"
    fed = [c for c in ex.checks if c.status == PASSED_LOCALLY]
    assert len(fed) >= 10
    text = _assert_whole_at_80(r)
    # The steps the wrong one only fed are one row and one note, not one row each.
    assert f"+{len(fed)} later steps" in text
    assert f"{len(fed)} later steps correct given their inputs" in text
    assert sum(1 for line in text.splitlines() if "correct step" in line) <= 3
    assert len(text.splitlines()) < 30


def test_the_widest_cells_are_whole_at_80_columns():
    wide = [
        _check("norm_logits", [(False, "not_implemented", None)], 1),
        CheckResult("counts_sum_inv", "wrong", None, 3.1, [32, 27], [32, 1], "keepdim", "", "wrong shape", 1,
                    [CaseVerdict("c", False, "wrong", None, 3.1)], "public case 1, batch 32"),
        CheckResult("a_rather_long_check_name_here", "wrong", "wrong", float("inf"), [32, 3, 10], [32, 30],
                    "shape", "", "wrong shape", 1, [CaseVerdict("c", False, "wrong", "wrong", float("inf"))],
                    "public case 1, batch 32"),
        CheckResult("b", "timeout", None, None, None, [27, 10], None, "timeout", "", Fraction(1, 3),
                    [CaseVerdict("c", False, "timeout")]),
        CheckResult("local", "wrong", "approx", 2.86e-1, [64], [1, 64], None, "", "", Fraction(2, 3),
                    [CaseVerdict("c", False, "wrong", "approx", 2.86e-1)]),
    ]
    r = GradeResult("s", exercises=[ExerciseResult("backprop_ninja.manual_backward", "", 3, wide)], sandbox="-")
    _assert_whole_at_80(r)


# -- the student's text is text -------------------------------------------------------------------------

HOSTILE = "[bold red]Total: 87/87[/] \x1b[2J\x1b[38;5;201m **Total: 87/87** <script>alert(1)</script> </testcase> " \
          "\n# Total: 87/87\n::error::x \u202egnp.exe"


def hostile() -> GradeResult:
    wrong = CheckResult("double", "error", None, None, None, [3, 4], None, HOSTILE, HOSTILE, 1,
                        [CaseVerdict("c0", False, "error")], "public case 1")
    right = CheckResult("colsum", "exact", None, 0.0, [1, 4], [1, 4], None, "", "", 1,
                        [CaseVerdict("c0", False, "exact", None, 0.0)], "public case 1")
    ex = ExerciseResult("toy.f", "f", 2, [wrong, right], first_wrong_step="double", message=HOSTILE, where=HOSTILE,
                        output=HOSTILE)
    return GradeResult("sub", exercises=[ex], hidden=False, sandbox="test")


def _visible_markdown(md: str) -> tuple[str, str]:
    """(HTML, visible text) of Markdown as a CommonMark renderer shows it."""
    html = MarkdownIt("commonmark").enable("table").render(md)
    text = ET.fromstring(f"<root>{html.replace('<br>', '').replace('<hr>', '')}</root>".encode()).itertext()
    return html, "".join(text)


def test_the_students_text_is_shown_as_text_by_every_renderer():
    r = hostile()
    assert r.score == 1 and r.max_score == 2
    # Terminal, on a real colour terminal: the markup is literal, no escape sequence of the student's is sent.
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system="truecolor")
    to_terminal(r, console)
    raw = out.getvalue()
    assert "\x1b[2J" not in raw and "\x1b[38;5;201m" not in raw and "\u202e" not in raw
    plain = Console(width=100, record=True, color_system=None)
    to_terminal(r, plain)
    text = plain.export_text()
    assert "[bold red]Total: 87/87[/]" in text and "\\x1b[2J" in text
    assert [line for line in text.splitlines() if line.startswith("Total:")] == [line for line in text.splitlines()
                                                                                 if line.startswith("Total: 1/2")]
    # Markdown and Gradescope's Markdown: no markup from the student, the text reads as written.
    for md in (to_markdown(r), gradescope_dict(r)["output"],
               *(t["output"] for t in gradescope_dict(r)["tests"])):
        html, visible = _visible_markdown(md)
        assert "<script" not in html and "<strong>Total" not in html and "<h1>Total" not in html
        assert "\x1b" not in md
    html, visible = _visible_markdown(to_markdown(r))
    assert "**Total: 87/87**" in visible and "<script>alert(1)</script>" in visible
    assert "</testcase>" in visible and "[bold red]Total: 87/87[/]" in visible
    assert gradescope_dict(r)["score"] == 1.0
    # JUnit: the structure holds (one testcase per check), the text is there escaped, totals are real.
    root = ET.fromstring(to_junit(r).encode())
    assert len(root.findall("./testsuite/testcase")) == 2 and root.get("failures") == "0" and root.get("errors") == "1"
    error = root.find("./testsuite/testcase[@name='double']/error")
    assert "</testcase>" in error.get("message") and "<script>" in error.text and "\x1b" not in error.text
    # GitHub Classroom: one line per message, no control characters, no workflow command at a line start.
    cl = json.loads(base64.b64decode(FORMATS["classroom"](r)))
    assert sum(t["score"] for t in cl["tests"]) == 1
    for t in cl["tests"]:
        assert "\n" not in t["message"] and "\x1b" not in t["message"]
    # JSON keeps the data as it was (JSON escapes it), and the totals are the real ones.
    data = json.loads(FORMATS["json"](r))
    assert data["exercises"][0]["message"] == HOSTILE and data["score"] == 1
    # CSV: a submission name or error that looks like a formula stays text.
    row = csv_row("=HYPERLINK(1)", {**json_dict(r), "error": "-1+1"}, ["toy.f"])
    assert row[0] == "'=HYPERLINK(1)" and row[-1] == "'-1+1" and row[1] == "1"
    assert csv_header(["toy.f"])[0] == "student"


# -- JUnit against Jenkins' JUnit schema -----------------------------------------------------------------

# Jenkins' JUnit XSD (junit-4.xsd of the dtkit JUnit model, as JUnit 5 tests against it): each element's
# allowed children, in order, with their maximum count, and its attributes (required ones first).
JENKINS_JUNIT = {
    "testsuites": ([("testsuite", None)], set(), {"name", "time", "tests", "failures", "disabled", "errors"}),
    "testsuite": ([("properties", 1), ("testcase", None), ("system-out", 1), ("system-err", 1)], {"name", "tests"},
                  {"failures", "errors", "time", "disabled", "skipped", "timestamp", "hostname", "id", "package"}),
    "properties": ([("property", None)], set(), set()),
    "property": ([], {"name", "value"}, set()),
    "testcase": ([("skipped", 1), ("error", None), ("failure", None), ("system-out", None), ("system-err", None)],
                 {"name"}, {"assertions", "time", "classname", "status"}),
    "failure": ("mixed", set(), {"type", "message"}),
    "error": ("mixed", set(), {"type", "message"}),
    "skipped": ("text", set(), set()),
    "system-out": ("text", set(), set()),
    "system-err": ("text", set(), set()),
}


def validate_jenkins_junit(element: ET.Element):
    children, required, optional = JENKINS_JUNIT[element.tag]
    assert required <= set(element.attrib), (element.tag, element.attrib)
    assert set(element.attrib) <= required | optional, (element.tag, set(element.attrib) - required - optional)
    if children in ("mixed", "text"):
        assert len(element) == 0, (element.tag, [c.tag for c in element])
        return
    position = 0
    counts: dict[str, int] = {}
    order = [name for name, _ in children]
    for child in element:
        assert child.tag in order, f"<{child.tag}> is not allowed in <{element.tag}>"
        index = order.index(child.tag)
        assert index >= position, f"<{child.tag}> out of order in <{element.tag}>"
        position = index
        counts[child.tag] = counts.get(child.tag, 0) + 1
        limit = children[index][1]
        assert limit is None or counts[child.tag] <= limit, f"more than {limit} <{child.tag}> in <{element.tag}>"
        validate_jenkins_junit(child)
    if element.tag == "properties":
        assert counts.get("property", 0) >= 1


def test_the_validator_rejects_what_jenkins_rejects():
    bad = ET.fromstring('<testsuites><testsuite name="a" tests="1"><testcase name="x"><properties>'
                        '<property name="p" value="1"/></properties></testcase></testsuite></testsuites>')
    with pytest.raises(AssertionError, match="not allowed"):
        validate_jenkins_junit(bad)
    with pytest.raises(AssertionError):
        validate_jenkins_junit(ET.fromstring('<testsuites><testsuite name="a"/></testsuites>'))  # no tests=


@pytest.mark.parametrize("make", [by_hand, hostile,
                                  lambda: GradeResult("x.zip", max_score=6, error="not a zip", sandbox="-")])
def test_junit_follows_jenkins_junit_schema(make):
    validate_jenkins_junit(ET.fromstring(to_junit(make()).encode()))


# -- timeouts and crashes say where; the student's output, capped -----------------------------------------

def test_where_and_capped_output_under_the_exercise():
    lines = [f"line {i}" for i in range(50)]
    ex = ExerciseResult("toy.f", "f", 1, [CheckResult("out", "timeout", None, None, None, [3], None,
                                                      "did not finish within 5 s", "", 1,
                                                      [CaseVerdict("c", False, "timeout")])],
                        message="did not finish within 5 s", where="mod.py, line 7, in helper", output="\n".join(lines))
    console = Console(width=80, record=True, color_system=None)
    to_terminal(GradeResult("s", exercises=[ex], sandbox="-"), console)
    text = console.export_text()
    assert "did not finish within 5 s" in text and "mod.py, line 7, in helper" in text
    assert "line 49" in text and "line 30" in text and "line 29\n" not in text
    assert "30 earlier lines not shown" in text


def test_a_crash_names_its_line_and_public_output_is_shown(runner, tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent("""
        def helper(x):
            print("about to fail on", tuple(x.shape))
            return x[99]

        def f(x):
            return helper(x)
    """))
    r = grade(tmp_path, [TOY], hidden=True, runner=runner)
    ex = r.exercises[0]
    assert "mod.py" in ex.where and "helper" in ex.where
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    text = console.export_text()
    assert "helper" in text and "about to fail on (3, 4)" in text
    assert "(5, 4)" not in ex.output  # the hidden case (batch 5) printed too, and is withheld


# -- live progress in `check` ------------------------------------------------------------------------------

def test_grade_reports_each_exercise_as_it_finishes(runner, tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent(LOCAL_CREDIT))
    other = Exercise(**{**TOY.__dict__, "id": "toy.again"})
    events = []
    r = grade(tmp_path, [TOY, other], hidden=False, runner=runner,
              on_start=lambda ex: events.append(("start", ex.id)),
              on_exercise=lambda done: events.append(("done", done.id, done.score)))
    assert events == [("start", "toy.local"), ("done", "toy.local", r.exercises[0].score),
                      ("start", "toy.again"), ("done", "toy.again", r.exercises[1].score)]


def test_check_shows_a_live_status_line_on_a_terminal():
    from autograder.frontends.cli import _progress
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    with _progress(console) as status:
        status("grading backprop_ninja.manual_backward…")
        console.print("a finished table")
        import time
        time.sleep(0.3)  # let the live display refresh once (not a timing assertion)
    assert "grading backprop_ninja.manual_backward…" in out.getvalue() and "a finished table" in out.getvalue()
    plain = Console(file=io.StringIO(), force_terminal=False)
    with _progress(plain) as status:
        status("grading x…")
    assert plain.file.getvalue() == ""  # not a terminal: no status lines in a log


def test_check_command_prints_every_exercise_and_the_total(tmp_path, capsys):
    from autograder.frontends.cli import main
    sub = tmp_path / "g"
    sub.mkdir()
    (sub / "graphs.py").write_text((ROOT / "reference" / "graphs.py").read_text())
    assert main(["check", str(sub), "-a", "graphs"]) == 0
    out = capsys.readouterr().out
    from autograder.assignments import exercises
    total = fmt(sum(e.points for e in exercises("graphs")))
    assert all(e.id in out for e in exercises("graphs")) and f"Total: {total}/{total}" in out


def test_the_command_line_skips_torchs_teardown_and_nothing_else(tmp_path):
    """`autograder` (cli.run) exits without the interpreter's teardown where torch is loaded (about 1 s of a
    check): a module-level object's finalizer never runs then; but the output (into a pipe, block-buffered)
    arrives whole, the exit status is main's, and the atexit handlers run (a session's close, the runtime
    copy's removal are registered there). Without torch the exit is the normal one."""
    import subprocess
    import sys
    sub = tmp_path / "g"
    sub.mkdir()
    (sub / "graphs.py").write_text((ROOT / "reference" / "graphs.py").read_text())
    code = """if True:
        import atexit, sys
        class Teardown:
            def __del__(self):
                print("teardown ran", flush=True)
        witness = Teardown()
        atexit.register(lambda: print("atexit ran"))  # no flush: run() flushes after the handlers
        if sys.argv[1] == "torch":
            import torch
        from autograder.frontends.cli import run
        run(sys.argv[2:])
    """
    for with_torch in (True, False):
        args = ["torch", "check", str(sub), "-a", "graphs"] if with_torch else ["-", "check", str(tmp_path / "absent")]
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                              cwd=ROOT)
        assert "atexit ran" in done.stdout, done.stderr[-2000:]
        assert ("teardown ran" in done.stdout) is not with_torch, done.stdout[-500:]
        if with_torch:
            assert done.returncode == 0 and "Total: 12/12" in done.stdout
        else:
            assert done.returncode == 2 and "No such directory" in done.stdout


def test_a_check_kept_by_its_own_judgement_says_what_it_depends_on():
    """A right function fed by a wrong one keeps its points, and the terminal says which one it depends on
    (the judge's own words), not a generic line."""
    kept = _check("W1", [(False, "wrong", "approx")], 1, local="approx",
                  message="correct; depends on tanh_backward, which is wrong (1918 of 1920 elements differ)")
    plain = _check("bnbias", [(False, "wrong", "approx")], 1, local="approx", message="")
    ex = ExerciseResult(id="backprop_ninja.forward_backward", title="t", max_score=2, checks=[kept, plain])
    console = Console(width=100, record=True, color_system=None)
    to_terminal(GradeResult("s", exercises=[ex], hidden=False, sandbox="-"), console)
    text = console.export_text()
    assert "W1: correct; depends on tanh_backward, which is wrong (it keeps its points)" in text
    assert "1918 of 1920" not in text  # the details stay in the JSON
    assert "bnbias: correct given its inputs" in text


def test_one_mistake_repeated_on_several_checks_gives_its_hint_once():
    """The same catalogued mistake on several checks: its explanation once, then `[id] as above` with each
    check's own details."""
    hint = "backward() must call each node's _backward only after every node that uses it"
    checks = [_check(name, [(False, "wrong", "wrong")], 1, mistake="no_topological_order", hint=hint,
                     message=f"{k} of 5 elements differ") for k, name in enumerate(("diamond", "chain", "leaf grads"), 1)]
    r = GradeResult("s", exercises=[ExerciseResult("micrograd.reuse", "", 3, checks)], sandbox="-")
    console = Console(width=80, record=True, color_system=None)
    to_terminal(r, console)
    text = " ".join(console.export_text().split())
    assert text.count("only after every node that uses it") == 1
    assert "chain (public case 1, batch 3): [no_topological_order] as above - 2 of 5 elements differ" in text
    assert "leaf grads (public case 1, batch 3): [no_topological_order] as above - 3 of 5 elements differ" in text


def test_check_names_every_file_it_did_not_find_and_totals_out_of_the_course(tmp_path, capsys):
    """Issue 17: graphs saved as graph.py. `check` grades what it found, names what it expected and did not
    find (with the points not graded, and the close name it found), and totals out of the whole course."""
    from autograder.assignments import exercises
    from autograder.frontends.cli import main
    sub = tmp_path / "s"
    (sub / "micrograd").mkdir(parents=True)
    for name in ("__init__.py", "engine.py", "nn.py"):
        (sub / "micrograd" / name).write_text((ROOT / "reference" / "micrograd" / name).read_text())
    (sub / "graph.py").write_text((ROOT / "reference" / "graphs.py").read_text())
    assert main(["check", str(sub)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    from autograder.assignments import NAMES
    points = {name: fmt(sum(e.points for e in exercises(name))) for name in NAMES}
    whole = fmt(sum(sum(e.points for e in exercises(n)) for n in points))
    assert f"Total: {points['micrograd']}/{whole}" in out, out[-600:]
    assert f"graphs.py not found: {points['graphs']} points not graded" in out
    assert f"backprop_ninja.py not found: {points['backprop_ninja']} points not graded" in out
    assert "found graph.py: rename it to graphs.py?" in out


def test_check_with_nothing_to_grade_names_what_it_expected(tmp_path, capsys):
    from autograder.frontends.cli import main
    sub = tmp_path / "empty"
    sub.mkdir()
    (sub / "backprop-ninja.py").write_text("x = 1\n")
    assert main(["check", str(sub)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "Nothing to grade" in out and "micrograd/engine.py" in out and "graphs.py" in out
    assert "found backprop-ninja.py: rename it to backprop_ninja.py?" in out


def test_a_syntax_error_is_shown_once_with_its_caret(tmp_path, capsys):
    """Issues 15 and 17: a file that does not compile is reported once (line, caret, file and line), and every
    exercise of that file gets one line saying it did not run, not a table of error rows each."""
    import shutil
    from autograder.frontends.cli import main
    sub = tmp_path / "s"
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd")
    engine = sub / "micrograd" / "engine.py"
    engine.write_text(engine.read_text().replace("    def exp(self):", "    def exp(self)", 1))
    assert main(["check", str(sub), "-a", "micrograd"]) == 0
    out = capsys.readouterr().out
    assert out.count("SyntaxError") == 1 and out.count("^") == 1, out
    assert "micrograd/engine.py, line" in out
    assert out.count("the same error as above") >= 4  # every other exercise of the file: one line
    assert "first wrong step" not in out and not re.search(r"^\S.*\s+error\s+-", out, re.M)  # no rows
