"""CI formats of a `GradeResult`: what Gradescope, GitHub Classroom, JUnit readers and CI summaries read.

Every format renders the same result (points are never recomputed here), so the totals agree across
formats. Hidden cases are never described by their inputs: a check's hidden part is reported as one
Gradescope test with visibility `after_published`, whose text names only the hidden case's label.

    python -m autograder.formats result.json --format markdown   # re-render a saved JSON result
"""
from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from .verdicts import ERROR, NOT_IMPLEMENTED, PASSING, TIMEOUT, worst
from .result import CaseVerdict, CheckResult, ExerciseResult, GradeResult, json_safe

OUTPUT_LIMIT = 8000  # characters of a student's printed output kept in a report


def fmt(x: float) -> str:
    """Points as a person writes them: 2, 0.5, 1.33."""
    x = round(float(x), 2)
    return str(int(x)) if x == int(x) else f"{x:g}"


def fmt_diff(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str) or math.isinf(x) or math.isnan(x):
        return str(x)
    return "0.0" if x == 0 else f"{x:.2e}"


def fmt_shape(shape) -> str:
    return "-" if shape is None else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def check_note(check: CheckResult) -> str:
    """One line saying what is wrong with a check (empty when it passed)."""
    if check.passed:
        return ""
    parts = []
    if check.local_verdict in PASSING:
        parts.append("this step is correct, but the gradient flowing into it is wrong")
    if check.mistake and check.hint:
        parts.append(f"[{check.mistake}] {check.hint}")
    elif check.hint:
        parts.append(check.hint)
    if check.message and check.message not in " ".join(parts):
        parts.append(check.message)
    return " - ".join(parts) or check.verdict


def _round(x: float) -> float:
    return round(float(x), 6)


POINT_DECIMALS = 2


def apportion(values: list[float], decimals: int = POINT_DECIMALS) -> list[float]:
    """`values` rounded to `decimals` so that they add up to their rounded total (largest remainder):
    three checks of 1/3 point read 0.33, 0.33, 0.34, and a full score adds up to the maximum."""
    unit = 10 ** decimals
    scaled = [max(0.0, v) * unit for v in values]
    floors = [math.floor(v + 1e-6) for v in scaled]
    missing = round(sum(scaled)) - sum(floors)
    order = sorted(range(len(values)), key=lambda i: scaled[i] - floors[i], reverse=True)
    for i in order[:max(0, missing)]:
        floors[i] += 1
    return [f / unit for f in floors]


def check_points(check: CheckResult) -> float:
    """A check's points from its cases (each an equal share), unrounded."""
    if not check.cases:
        return check.points
    return check.max_points * sum(1 for c in check.cases if _passes(c)) / len(check.cases)


def check_passed(check: CheckResult) -> bool:
    """Every case earned its share (globally or locally right)."""
    return all(_passes(c) for c in check.cases) if check.cases else check.passed


# -- Gradescope ------------------------------------------------------------------------------------------

def _split_points(check: CheckResult) -> dict[bool, tuple[float, float, list[CaseVerdict]]]:
    """{hidden: (score, max_score, cases)}: the check's points split by the share of its cases
    (the pipeline gives each case an equal share, earned when it passes globally or locally)."""
    n = len(check.cases)
    if n == 0:  # no case detail: all public
        return {False: (check.points, check.max_points, [])}
    out = {}
    for hidden in (False, True):
        cases = [c for c in check.cases if c.hidden == hidden]
        if cases:
            earned = sum(1 for c in cases if _passes(c))
            out[hidden] = (check.max_points * earned / n, check.max_points * len(cases) / n, cases)
    return out


def _md_fence(text: str) -> str:
    """`text` in a Markdown code block whose fence no backtick run inside it can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _passes(case: CaseVerdict) -> bool:
    return case.verdict in PASSING or case.local_verdict in PASSING


def _shown_case_is_hidden(check: CheckResult) -> bool:
    """Whether the check's message, maxdiff and shapes describe a hidden case: the pipeline shows the
    first public case with the worst verdict, and a hidden one only when no public case has it."""
    public = [c.verdict for c in check.cases if not c.hidden]
    return bool(check.cases) and (not public or worst(*public) != check.verdict)


def _check_markdown(check: CheckResult, cases: list[CaseVerdict], hidden: bool) -> str:
    """A Gradescope test's text for the public or the hidden cases of one check."""
    passed = sum(1 for c in cases if _passes(c))
    verdict = "passed" if passed == len(cases) else worst(*(c.verdict for c in cases if not _passes(c)))
    lines = [f"**{verdict}** on {passed}/{len(cases)} {'hidden' if hidden else 'public'} "
             f"case{'s' if len(cases) != 1 else ''}"]
    diffs = [c.maxdiff for c in cases if c.maxdiff is not None]
    about_these = _shown_case_is_hidden(check) == hidden
    if not hidden:
        shape = f"; shape {fmt_shape(check.shape)} (expected {fmt_shape(check.expected_shape)})" if about_these else ""
        lines.append(f"maxdiff {fmt_diff(max(diffs) if diffs else None)}{shape}")
    if passed < len(cases):
        if about_these:
            lines.append(check_note(check))
        elif check.mistake and check.hint:
            lines.append(f"[{check.mistake}] {check.hint}")
    return "\n\n".join(lines)


def gradescope_dict(result: GradeResult) -> dict:
    """Gradescope's `results.json` (autograder specification: score, execution_time, output,
    output_format, tests[] with name, score, max_score, status, output, visibility)."""
    tests = []
    if result.error:
        tests.append({"name": "submission", "score": 0.0, "max_score": _round(result.max_score),
                      "status": "failed", "output": f"Could not grade this submission: {result.error}",
                      "output_format": "md", "visibility": "visible"})
    parts = [(ex, check, hidden, split) for ex in result.exercises for check in ex.checks
             for hidden, split in _split_points(check).items()]
    scores = apportion([split[0] for *_, split in parts])
    maxima = apportion([split[1] for *_, split in parts])
    for (ex, check, hidden, (_, _, cases)), score, max_score in zip(parts, scores, maxima):
        tests.append({
            "name": f"{ex.id}: {check.name}" + (" (hidden cases)" if hidden else ""),
            "score": score, "max_score": max_score,
            "status": "passed" if all(_passes(c) for c in cases) else "failed",
            "output": _check_markdown(check, cases, hidden),
            "output_format": "md",
            "visibility": "after_published" if hidden else "visible",
            "tags": [ex.id],
        })
    return {
        "score": round(sum(scores), POINT_DECIMALS) if parts else _round(result.score),
        "execution_time": max(0, round(result.seconds)),
        "output": summary_markdown(result, with_checks=False),
        "output_format": "md",
        "test_output_format": "md",
        "stdout_visibility": "hidden",
        "visibility": "visible",
        "tests": tests,
    }


def to_gradescope(result: GradeResult) -> str:
    return json.dumps(json_safe(gradescope_dict(result)), indent=2, allow_nan=False) + "\n"


# -- GitHub Classroom -------------------------------------------------------------------------------------

def classroom_dict(result: GradeResult) -> dict:
    """The result object of a GitHub Classroom autograding runner (version 1), as the
    autograding-grading-reporter reads it: it sums `tests[].score` over runners for the points and
    shows each test's name, status (pass/fail) and message."""
    tests = []
    if result.error:
        tests.append({"name": "submission", "status": "error", "score": 0, "message": result.error,
                      "test_code": "", "filename": "", "line_no": 0, "duration": 0})
    checks = [(ex, check) for ex in result.exercises for check in ex.checks]
    scores = apportion([check_points(check) for _, check in checks])
    for (ex, check), score in zip(checks, scores):
        note = check_note(check)
        tests.append({"name": f"{ex.id}: {check.name}",
                      "status": "pass" if check_passed(check) else "fail",
                      "score": score,
                      "message": f"{fmt(check.points)}/{fmt(check.max_points)} points" + (f": {note}" if note else ""),
                      "test_code": "", "filename": ex.id.split(".")[0], "line_no": 0, "duration": 0})
    status = "error" if result.error else "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 1, "status": status, "max_score": round(result.max_score, POINT_DECIMALS), "tests": tests}


def to_classroom(result: GradeResult) -> str:
    """Base64 of the result JSON: the value a runner step sets as its `result` output."""
    text = json.dumps(json_safe(classroom_dict(result)), allow_nan=False)
    return base64.b64encode(text.encode()).decode() + "\n"


# -- JUnit XML --------------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text XML 1.0 can hold: control characters (a student's ANSI colours, NUL) become U+FFFD."""
    return _XML_INVALID.sub("\ufffd", str(text))


def to_junit(result: GradeResult) -> str:
    """JUnit XML: one testsuite per exercise, one testcase per check; a wrong answer is a <failure>,
    code that raised, timed out or crashed is an <error>."""
    suites = ET.Element("testsuites", name=xml_text(f"autograder {result.submission}"))
    totals = {"tests": 0, "failures": 0, "errors": 0}
    if result.error:
        suite = ET.SubElement(suites, "testsuite", name="submission", tests="1", failures="0", errors="1",
                              skipped="0", time="0")
        case = ET.SubElement(suite, "testcase", classname="submission", name="submission", time="0")
        ET.SubElement(case, "error", message=xml_text(result.error), type="submission").text = xml_text(result.error)
        totals["tests"] += 1
        totals["errors"] += 1
    for ex in result.exercises:
        failures = errors = 0
        suite = ET.SubElement(suites, "testsuite", name=xml_text(ex.id), time=f"{ex.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="score", value=fmt(ex.score))
        ET.SubElement(props, "property", name="max_score", value=fmt(ex.max_score))
        for check in ex.checks:
            case = ET.SubElement(suite, "testcase", classname=xml_text(ex.id), name=xml_text(check.name), time="0")
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="points",
                          value=f"{fmt(check.points)}/{fmt(check.max_points)}")
            if check.passed:
                continue
            note = xml_text(check_note(check))
            detail = xml_text(f"verdict: {check.verdict}\nmaxdiff: {fmt_diff(check.maxdiff)}\n"
                              f"shape: {fmt_shape(check.shape)} (expected {fmt_shape(check.expected_shape)})\n"
                              f"points: {fmt(check.points)}/{fmt(check.max_points)}\n{note}")
            if check.verdict in (ERROR, TIMEOUT):
                errors += 1
                ET.SubElement(case, "error", message=note, type=check.verdict).text = detail
            else:
                failures += 1
                kind = "not_implemented" if check.verdict == NOT_IMPLEMENTED else check.verdict
                ET.SubElement(case, "failure", message=note, type=kind).text = detail
        if ex.output:
            ET.SubElement(suite, "system-out").text = xml_text(ex.output[-OUTPUT_LIMIT:])
        suite.set("tests", str(len(ex.checks)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
        totals["tests"] += len(ex.checks)
        totals["failures"] += failures
        totals["errors"] += errors
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("time", f"{result.seconds:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# -- Markdown (a CI job summary) --------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def summary_markdown(result: GradeResult, with_checks: bool = True) -> str:
    lines = [f"## Autograder: {fmt(result.score)}/{fmt(result.max_score)} points", ""]
    if result.error:
        lines += [f"**Could not grade this submission:** {_md_cell(result.error)}", ""]
    for ex in result.exercises:
        lines.append(f"### {ex.id}: {fmt(ex.score)}/{fmt(ex.max_score)}")
        if ex.first_wrong_step:
            lines.append(f"\nFirst wrong step: `{ex.first_wrong_step}`")
        if with_checks and ex.checks:
            lines += ["", "| check | verdict | maxdiff | shape (got vs expected) | points | note |",
                      "|---|---|---|---|---|---|"]
            for c in ex.checks:
                icon = "✅" if c.passed else "❌"
                lines.append(f"| {_md_cell(c.name)} | {icon} {c.verdict} | {fmt_diff(c.maxdiff)} | "
                             f"{fmt_shape(c.shape)} vs {fmt_shape(c.expected_shape)} | "
                             f"{fmt(c.points)}/{fmt(c.max_points)} | {_md_cell(check_note(c))} |")
        elif not with_checks:
            wrong = [c for c in ex.checks if not c.passed]
            for c in wrong:
                lines.append(f"- `{c.name}`: {check_note(c)}")
        if ex.output:
            lines += ["", "<details><summary>printed output</summary>", "",
                      _md_fence(ex.output[-OUTPUT_LIMIT:]), "", "</details>"]
        lines.append("")
    cases = "public and hidden" if result.hidden else "public"
    lines.append(f"_{cases} cases; sandbox: {result.sandbox}; {result.seconds:.1f} s_")
    return "\n".join(lines) + "\n"


def to_markdown(result: GradeResult) -> str:
    return summary_markdown(result, with_checks=True)


# -- CSV rows (grades.csv) --------------------------------------------------------------------------------

def csv_header(exercise_ids: list[str]) -> list[str]:
    return ["student", "score", "max_score", *exercise_ids, "error"]


def csv_row(student: str, result: dict, exercise_ids: list[str]) -> list:
    """One spreadsheet row from a result as saved in JSON (`GradeResult.to_dict()`)."""
    by_id = {ex["id"]: _csv_number(ex["score"]) for ex in result.get("exercises", [])}
    return [student, _csv_number(result.get("score", 0)), _csv_number(result.get("max_score", 0)),
            *(by_id.get(i, "") for i in exercise_ids), result.get("error") or ""]


def _csv_number(x) -> str:
    return format(round(float(x), 4), "g")


def to_csv(rows: list[list], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# -- round trip ---------------------------------------------------------------------------------------------


def _number(x):
    """JSON wrote inf/NaN as strings: read them back as floats."""
    return float(x) if isinstance(x, str) and x in ("inf", "-inf", "nan") else x


def result_from_dict(data: dict) -> GradeResult:
    """A `GradeResult` from its JSON form (the `json` format, or a batch result file)."""
    exercises = []
    for ex in data.get("exercises", []):
        checks = []
        for c in ex.get("checks", []):
            cases = [CaseVerdict(v["case"], v["hidden"], v["verdict"], v.get("local_verdict"), _number(v.get("maxdiff")))
                     for v in c.get("cases", [])]
            fields = {k: c.get(k) for k in CheckResult.__dataclass_fields__ if k != "cases"}
            fields["maxdiff"] = _number(fields["maxdiff"])
            fields["message"] = fields["message"] or ""
            fields["hint"] = fields["hint"] or ""
            checks.append(CheckResult(**fields, cases=cases))
        fields = {k: ex.get(k) for k in ExerciseResult.__dataclass_fields__ if k != "checks" and k in ex}
        exercises.append(ExerciseResult(**fields, checks=checks))
    fields = {k: data[k] for k in GradeResult.__dataclass_fields__ if k != "exercises" and k in data}
    return GradeResult(**fields, exercises=exercises)


FORMATS = {"gradescope": to_gradescope, "classroom": to_classroom, "junit": to_junit, "markdown": to_markdown}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.formats", description=__doc__.split("\n")[0])
    parser.add_argument("result", help="a result saved with `autograder grade --format json`")
    parser.add_argument("-f", "--format", required=True, choices=sorted(FORMATS))
    args = parser.parse_args(argv)
    try:
        result = result_from_dict(json.loads(Path(args.result).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read {args.result}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(FORMATS[args.format](result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
