"""CI formats: Gradescope results.json against its documented fields, JUnit XML that parses, the GitHub
Classroom runner result the reporter decodes, Markdown, CSV; all agree on the points."""
import base64
import json
import textwrap
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import torch

from autograder.core.exercise import Case, Exercise, Mistake
from autograder.frontends.formats import (classroom_dict, csv_header, csv_row, gradescope_dict, result_from_dict, to_classroom,
                                to_csv, to_junit, to_markdown)
from autograder.core.pipeline import GradeResult, grade
from autograder.frontends.render import FORMATS, json_dict

SECRET_SIZE = 7  # hidden cases use a shape no public case has: its mention would be a leak


def cases(seeds):
    out = []
    for i in seeds.public(2):
        out.append(Case(f"public-{i}", False, {"args": {"x": torch.randn(3, 4, dtype=torch.float64,
                                                                           generator=torch.Generator().manual_seed(i))}},
                        label="float64, 3x4"))
    for j, s in enumerate(seeds.hidden_seeds("fmt.f", 2)):
        x = torch.randn(SECRET_SIZE, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
        out.append(Case(f"hidden-{j}", True, {"args": {"x": x}}, label="float64, other shape"))
    return out


def truth(case):
    x = case.inputs["args"]["x"]
    return {"double": 2 * x, "colsum": x.sum(0, keepdim=True)}


EX = Exercise(id="fmt.f", module="mod", entry="f", points=6, cases=cases, driver="tests.core_drivers:call_dict",
              truth=truth, mistakes=(Mistake("triple", "multiplied by 3 instead of 2",
                                             lambda got, exp, **_: torch.allclose(got, exp * 1.5), ("double",)),))

RIGHT = """
    def f(x):
        return {"double": x + x, "colsum": x.sum(0, keepdim=True)}
"""
# Right on the public 3x4 cases only (hard-coded shape), and a catalogued mistake; prints hostile text.
BUGGY = """
    def f(x):
        print("\\x1b[31mred\\x00 ``` <b>&</b> ]]> | pipe")
        if x.shape[0] != 3:
            raise ValueError(f"secret input {x.shape[0]}x{x.shape[1]}: {x.sum().item()}")
        return {"double": 3 * x, "colsum": x.sum(0, keepdim=True)}
"""


@pytest.fixture(scope="module")
def results(runner, tmp_path_factory):
    out = {}
    for name, body in (("right", RIGHT), ("buggy", BUGGY)):
        d = tmp_path_factory.mktemp(name)
        (d / "mod.py").write_text(textwrap.dedent(body))
        out[name] = grade(d, [EX], hidden=True, runner=runner)
    out["error"] = GradeResult(submission="x.zip", score=0.0, max_score=6.0, exercises=[], hidden=True,
                               sandbox="-", error="x.zip is not a valid zip file")
    return out


# Gradescope's autograder specification, written as a JSON schema: the documented top-level and
# per-test fields and the documented values of visibility, status and output formats.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
OUTPUT_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "tests"],
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"}, "output_format": OUTPUT_FORMAT, "test_output_format": OUTPUT_FORMAT,
        "test_name_format": OUTPUT_FORMAT, "visibility": VISIBILITY, "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"}, "leaderboard": {"type": "array"},
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["score", "max_score", "name", "status"],
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"}, "name": {"type": "string"},
                "name_format": OUTPUT_FORMAT, "number": {"type": "string"}, "output": {"type": "string"},
                "output_format": OUTPUT_FORMAT, "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": VISIBILITY, "status": {"enum": ["passed", "failed"]},
                "extra_data": {"type": "object"}}}},
    },
}


@pytest.mark.parametrize("which", ["right", "buggy", "error"])
def test_gradescope_results_json_follows_the_specification(results, which):
    r = results[which]
    data = json.loads(FORMATS["gradescope"](r))
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == pytest.approx(r.score)
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(r.score)
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(r.max_score)
    assert all(t["output_format"] == "md" for t in data["tests"])
    for t in data["tests"]:
        assert t["status"] == ("passed" if t["score"] == t["max_score"] else "failed")


def test_gradescope_hidden_results_wait_for_publication_and_leak_no_input(results):
    data = gradescope_dict(results["buggy"])
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    public = [t for t in data["tests"] if t["visibility"] == "visible"]
    assert {t["name"] for t in hidden} == {"fmt.f: double (hidden cases)", "fmt.f: colsum (hidden cases)"}
    assert len(public) == 2
    # Public colsum is right (2 of 4 case shares), the hidden cases raise: half the points.
    colsum = next(t for t in public if t["name"] == "fmt.f: colsum")
    assert (colsum["score"], colsum["max_score"], colsum["status"]) == (1.5, 1.5, "passed")
    hidden_colsum = next(t for t in hidden if "colsum" in t["name"])
    assert (hidden_colsum["score"], hidden_colsum["max_score"]) == (0.0, 1.5)
    text = json.dumps(data)
    assert "secret input" not in text and f"{SECRET_SIZE}x5" not in text
    assert "other shape" in hidden_colsum["output"]  # the label says which kind of case failed
    double = next(t for t in public if t["name"] == "fmt.f: double")
    assert "triple" in double["output"] and double["score"] == 0


def test_junit_xml_parses_with_one_testcase_per_check(results):
    for which, r in results.items():
        root = ET.fromstring(FORMATS["junit"](r).encode())
        cases = root.findall("./testsuite/testcase")
        n_checks = sum(len(ex.checks) for ex in r.exercises)
        assert len(cases) == (n_checks or 1)
        assert int(root.get("tests")) == len(cases)
        bad = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
        assert int(root.get("failures")) + int(root.get("errors")) == len(bad)
    buggy = ET.fromstring(to_junit(results["buggy"]).encode())
    double = buggy.find("./testsuite/testcase[@name='double']")
    assert double.find("error").get("type") == "error"  # worst over cases: the hidden ones raised
    assert "triple" in double.find("error").get("message")  # the public cases' catalogued mistake
    colsum = buggy.find("./testsuite/testcase[@name='colsum']")
    assert colsum.find("error").get("type") == "error"  # hidden cases raised
    out = buggy.find("./testsuite/system-out").text
    assert "<b>&</b> ]]>" in out and "\x00" not in out  # escaped, control characters replaced
    right = ET.fromstring(to_junit(results["right"]).encode())
    assert right.get("failures") == right.get("errors") == "0"
    err = ET.fromstring(to_junit(results["error"]).encode())
    assert "not a valid zip" in err.find("./testsuite/testcase/error").get("message")


def test_classroom_result_is_what_the_reporter_decodes(results):
    for which, r in results.items():
        encoded = to_classroom(r).strip()
        data = json.loads(base64.b64decode(encoded))
        assert data == json.loads(json.dumps(classroom_dict(r)))
        assert data["version"] == 1 and data["max_score"] == r.max_score
        # The reporter's points: the sum of tests[].score against max_score.
        assert sum(t["score"] for t in data["tests"]) == pytest.approx(r.score)
        assert all(t["status"] in ("pass", "fail", "error") for t in data["tests"])
    assert json.loads(base64.b64decode(to_classroom(results["right"])))["status"] == "pass"
    # A wrong answer is a score, not a failed run: the reporter fails the job only on fail or error.
    assert json.loads(base64.b64decode(to_classroom(results["buggy"])))["status"] == "pass"
    assert json.loads(base64.b64decode(to_classroom(results["error"])))["status"] == "error"


def test_markdown_summary_table_stays_a_table(results):
    md = to_markdown(results["buggy"])
    assert md.startswith(f"## Autograder: 1.5/6 points")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2  # header + one row per check
    assert all(line.count(" | ") - line.count("\\|") >= 5 for line in rows)
    # The printed output sits in a fence that its own backticks cannot close.
    assert "````\n" in md
    assert "Could not grade" in to_markdown(results["error"])


def test_json_round_trip_and_csv_rows(results):
    for r in results.values():
        back = result_from_dict(json.loads(FORMATS["json"](r)))
        assert json_dict(back) == json_dict(r)
        assert FORMATS["gradescope"](back) == FORMATS["gradescope"](r)
    ids = ["fmt.f"]
    rows = [csv_row(k, json_dict(r), ids) for k, r in results.items()]
    text = to_csv(rows, csv_header(ids))
    assert text.splitlines()[0] == "student,score,max_score,fmt.f,error"
    assert text.splitlines()[1] == "right,6,6,6,"
    assert "not a valid zip" in text.splitlines()[3]


def test_points_in_thirds_add_up_to_the_total():
    from autograder.frontends.formats import apportion
    assert apportion([1 / 3] * 3) == [0.34, 0.33, 0.33] or sorted(apportion([1 / 3] * 3)) == [0.33, 0.33, 0.34]
    assert round(sum(apportion([1 / 3] * 3 + [2 / 3] * 3 + [0.0])), 6) == 3
    assert apportion([0.0, 0.0]) == [0.0, 0.0]
    parts = [1 / 6] * 5 + [0.0]  # five of six sixths earned: 0.83 in all, the 0 stays 0
    assert round(sum(apportion(parts)), 6) == 0.83 and apportion(parts)[-1] == 0.0


def test_junit_of_graded_results_follows_jenkins_schema(results):
    from tests.test_render import validate_jenkins_junit
    for r in results.values():
        validate_jenkins_junit(ET.fromstring(to_junit(r).encode()))
