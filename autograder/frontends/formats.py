"""CI formats of a `GradeResult`: what Gradescope, GitHub Classroom, JUnit readers and CI summaries read.

Every format renders the same result (points are never recomputed here), so the totals agree across
formats. Hidden cases are never described by their inputs: a check's hidden part is reported as one
Gradescope test with visibility `after_published`, whose text names only the hidden case's label.

    python -m autograder.frontends.formats result.json --format markdown   # re-render a saved JSON result
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

from fractions import Fraction

from autograder.runtime.verdicts import ERROR, NOT_IMPLEMENTED, TIMEOUT, worst
from autograder.core.result import (PASSED_LOCALLY, CaseVerdict, CheckResult, GradeResult, exact, json_safe, printable,
                     printable_output, result_from_dict)

OUTPUT_LIMIT = 8000  # characters of a student's printed output kept in a report
POINT_DECIMALS = 2   # points as people read them (tables, Markdown, JUnit)
SCORE_DECIMALS = 6   # points in the formats a program sums (Gradescope, Classroom): they add up exactly


def fmt(x) -> str:
    """Points as a person writes them: 2, 0.5, 1.33 (from the exact value, rounded once, here)."""
    unit = 10 ** POINT_DECIMALS
    x = Fraction(math.floor(exact(x) * unit + Fraction(1, 2)), unit)  # half up, as people round: 1/8 -> 0.13
    return str(int(x)) if x.denominator == 1 else f"{float(x):g}"


def fmt_diff(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str) or math.isinf(x) or math.isnan(x):
        return str(x)
    return "0.0" if x == 0 else f"{x:.2e}"


def fmt_shape(shape) -> str:
    return "-" if shape is None else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def shown_maxdiff(check: CheckResult):
    """The maxdiff a student may see: none for a hidden case (with a constant answer it gives the truth back;
    the instructor's JSON keeps it)."""
    return None if check.case_label.startswith("hidden") else check.maxdiff


def shown_shape(check: CheckResult):
    """The answer's shape a student may see: none for a hidden case (the student's code chose it)."""
    return None if check.case_label.startswith("hidden") else check.shape


LOCAL_CREDIT_NOTE = "correct step, wrong upstream: this step is right given its inputs and keeps its points"


def check_note(check: CheckResult, case: bool = True) -> str:
    """One line saying what is wrong with a check (empty when it is fully right), as plain text, led by
    the case it describes ("public case 2, batch 4: ...") unless `case` is False."""
    if check.correct:
        return ""
    where = f"{check.case_label}: " if case and check.case_label else ""
    if check.status == PASSED_LOCALLY:
        return printable(where + LOCAL_CREDIT_NOTE)
    parts = []
    if check.mistake and check.hint:
        parts.append(f"[{check.mistake}] {check.hint}")
    elif check.hint:
        parts.append(check.hint)
    if check.message and check.message not in " ".join(parts):
        parts.append(check.message)
    return printable(where + (" - ".join(parts) or check.verdict))


def apportion(values, decimals: int = POINT_DECIMALS) -> list[float]:
    """`values` rounded to `decimals` so that they add up to their rounded total (largest remainder):
    three checks of 1/3 point read 0.33, 0.33, 0.34 at two decimals, and a full score adds up to the
    maximum. Computed on the exact values."""
    unit = 10 ** decimals
    scaled = [max(Fraction(0), exact(v)) * unit for v in values]
    floors = [math.floor(v) for v in scaled]
    missing = round(sum(scaled, Fraction(0))) - sum(floors)
    order = sorted(range(len(values)), key=lambda i: scaled[i] - floors[i], reverse=True)
    for i in order[:max(0, missing)]:
        floors[i] += 1
    return [f / unit for f in floors]


# -- Markdown escaping: the student's text is text, never markup ----------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=$])")


def md_text(text) -> str:
    """Text Markdown (CommonMark, GitHub, Gradescope) shows as written: HTML is entity-escaped, every
    punctuation mark that could start markup is backslash-escaped, control characters are written out."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # A line of it printed to a CI log cannot start a GitHub Actions `::command::`.
    return re.sub(r"(?m)^(\s*):", r"\1\\:", text)


def md_name(text) -> str:
    """A grader's identifier (`backprop_ninja.manual_backward`) as written; anything else as `md_text`."""
    return text if re.fullmatch(r"[A-Za-z0-9_.]+", str(text)) else md_text(text)


def md_code(text) -> str:
    """Inline code that no backtick run inside it can close."""
    text = printable(text).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- Gradescope ------------------------------------------------------------------------------------------

def _split_points(check: CheckResult) -> dict[bool, tuple[Fraction, Fraction, list[CaseVerdict]]]:
    """{hidden: (score, max_score, cases)}: the check's exact points split by its cases' shares."""
    n = len(check.cases)
    if n == 0:  # no case detail: all public
        return {False: (check.points, check.max_points, [])}
    out = {}
    for hidden in (False, True):
        cases = [c for c in check.cases if c.hidden == hidden]
        if cases:
            earned = sum(1 for c in cases if c.earned)
            out[hidden] = (check.max_points * Fraction(earned, n), check.max_points * Fraction(len(cases), n), cases)
    return out


def _md_fence(text: str) -> str:
    """`text` in a Markdown code block whose fence no backtick run inside it can close."""
    text = printable_output(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _shown_case_is_hidden(check: CheckResult) -> bool:
    """Whether the check's message, maxdiff and shapes describe a hidden case (its `case_label`)."""
    return check.case_label.startswith("hidden")


def _check_markdown(check: CheckResult, cases: list[CaseVerdict], hidden: bool) -> str:
    """A Gradescope test's text for the public or the hidden cases of one check."""
    passed = sum(1 for c in cases if c.earned)
    correct = sum(1 for c in cases if c.verdict in ("exact", "approx"))
    if correct == len(cases):
        verdict = "passed"
    elif passed == len(cases):
        verdict = "passed (correct step, wrong upstream)"
    else:
        verdict = worst(*(c.verdict for c in cases if not c.earned))
    kind = "hidden" if hidden else "public"
    # "passed on 2/3", never "wrong on 0/3" (which reads as never wrong): the count is of cases passed.
    lines = [f"**{verdict}**: {passed}/{len(cases)} {kind} case{'s' if len(cases) != 1 else ''} passed"]
    about_these = _shown_case_is_hidden(check) == hidden
    if about_these and not hidden:
        lines.append(f"maxdiff {fmt_diff(check.maxdiff)}; shape {fmt_shape(check.shape)} "
                     f"(expected {fmt_shape(check.expected_shape)})")
    if passed < len(cases) or correct < len(cases):
        if about_these:
            lines.append(md_text(check_note(check)))
        elif check.mistake and check.hint and not hidden:
            lines.append(md_text(f"[{check.mistake}] {check.hint}"))
    return "\n\n".join(lines)


def gradescope_dict(result: GradeResult) -> dict:
    """Gradescope's `results.json` (autograder specification: score, execution_time, output,
    output_format, tests[] with name, score, max_score, status, output, visibility)."""
    tests = []
    if result.error:
        tests.append({"name": "submission", "score": 0.0, "max_score": float(round(result.max_score, SCORE_DECIMALS)),
                      "status": "failed", "output": f"Could not grade this submission: {md_text(result.error)}",
                      "output_format": "md", "visibility": "visible"})
    parts = [(ex, check, hidden, split) for ex in result.exercises for check in ex.checks
             for hidden, split in _split_points(check).items()]
    scores = apportion([split[0] for *_, split in parts], SCORE_DECIMALS)
    maxima = apportion([split[1] for *_, split in parts], SCORE_DECIMALS)
    for (ex, check, hidden, (_, _, cases)), score, max_score in zip(parts, scores, maxima):
        tests.append({
            "name": f"{ex.id}: {check.name}" + (" (hidden cases)" if hidden else ""),
            "score": score, "max_score": max_score,
            "status": "passed" if (all(c.earned for c in cases) if cases else check.passed) else "failed",
            "output": _check_markdown(check, cases, hidden),
            "output_format": "md",
            "visibility": "after_published" if hidden else "visible",
            "tags": [ex.id],
        })
    return {
        "score": float(round(result.score, SCORE_DECIMALS)),
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

def _log_line(text) -> str:
    """Text for one line of a CI log: no control characters, no line break (so nothing the student wrote
    can start a line of its own, such as a GitHub Actions `::workflow-command::`)."""
    return printable(text).replace("\n", " ").replace("\t", " ")


def classroom_dict(result: GradeResult) -> dict:
    """The result object of a GitHub Classroom autograding runner (version 1), built so that the
    autograding-grading-reporter's two readings of it (the points it sends, the table it prints) both
    equal the result's points: see `classroom.py`."""
    from autograder.integrations.classroom import runner_result
    return runner_result(result)


def to_classroom(result: GradeResult) -> str:
    """Base64 of the result JSON: the value a runner step sets as its `result` output."""
    text = json.dumps(json_safe(classroom_dict(result)), allow_nan=False)
    return base64.b64encode(text.encode()).decode() + "\n"


# -- JUnit XML --------------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text XML 1.0 can hold, with no control character a log viewer could act on (ANSI, bidi): those are
    written out as `\\x1b`-style escapes. ElementTree escapes markup (<, &) itself."""
    return _XML_INVALID.sub("\ufffd", printable(text))


def to_junit(result: GradeResult) -> str:
    """JUnit XML as Jenkins' JUnit schema has it: one testsuite per exercise, one testcase per check; a
    check short of full points is a <failure> (a wrong answer) or an <error> (code that raised, timed out
    or crashed); a check's points are in its <system-out>, the exercise's in the suite's <properties>."""
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
            points = f"points: {fmt(check.points)}/{fmt(check.max_points)}"
            note = xml_text(check_note(check))
            if not check.passed:
                detail = xml_text(f"verdict: {check.verdict}\nmaxdiff: {fmt_diff(shown_maxdiff(check))}\n"
                                  f"shape: {fmt_shape(shown_shape(check))} (expected {fmt_shape(check.expected_shape)})\n"
                                  f"{points}\n") + note
                if check.verdict in (ERROR, TIMEOUT):
                    errors += 1
                    ET.SubElement(case, "error", message=note, type=check.verdict).text = detail
                else:
                    failures += 1
                    kind = "not_implemented" if check.verdict == NOT_IMPLEMENTED else check.verdict
                    ET.SubElement(case, "failure", message=note, type=kind).text = detail
            ET.SubElement(case, "system-out").text = points + (f"\n{note}" if note and check.passed else "")
        if ex.output:
            ET.SubElement(suite, "system-out").text = xml_text(printable_output(ex.output[-OUTPUT_LIMIT:]))
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

def _md_cell(text) -> str:
    """Text that stays inside one Markdown table cell and is shown as written."""
    return md_text(text).replace("\n", " ")


def _icon(check: CheckResult) -> str:
    return {"passed": "✅", "passed_locally": "✅"}.get(check.status, "❌")


def summary_markdown(result: GradeResult, with_checks: bool = True) -> str:
    lines = [f"## Autograder: {fmt(result.score)}/{fmt(result.max_score)} points", ""]
    if result.error:
        lines += [f"**Could not grade this submission:** {_md_cell(result.error)}", ""]
    for ex in result.exercises:
        lines.append(f"### {md_name(ex.id)}: {fmt(ex.score)}/{fmt(ex.max_score)}")
        if ex.first_wrong_step:
            lines.append(f"\nFirst wrong step: {md_code(ex.first_wrong_step)}")
        if ex.message:
            where = f" (at {md_text(ex.where)})" if ex.where and ex.where not in ex.message else ""
            lines.append(f"\n{md_text(ex.message)}{where}")
        if with_checks and ex.checks:
            lines += ["", "| check | verdict | maxdiff | shape (got vs expected) | points | note |",
                      "|---|---|---|---|---|---|"]
            for c in ex.checks:
                verdict = "correct step, wrong upstream" if c.status == PASSED_LOCALLY else c.verdict
                lines.append(f"| {md_name(c.name) if md_name(c.name) == c.name else _md_cell(c.name)} | {_icon(c)} {verdict} | {fmt_diff(shown_maxdiff(c))} | "
                             f"{fmt_shape(shown_shape(c))} vs {fmt_shape(c.expected_shape)} | "
                             f"{fmt(c.points)}/{fmt(c.max_points)} | {_md_cell(check_note(c))} |")
        elif not with_checks:
            for c in ex.checks:
                if not c.passed:
                    lines.append(f"- {md_code(c.name)}: {_md_cell(check_note(c))}")
        if ex.output:
            lines += ["", "<details><summary>printed output</summary>", "",
                      _md_fence(ex.output[-OUTPUT_LIMIT:]), "", "</details>"]
        lines.append("")
    cases = "public and hidden" if result.hidden else "public"
    lines.append(f"_{cases} cases; sandbox: {md_text(result.sandbox)}; {result.seconds:.1f} s_")
    return "\n".join(lines) + "\n"


def to_markdown(result: GradeResult) -> str:
    return summary_markdown(result, with_checks=True)


# -- CSV rows (grades.csv) --------------------------------------------------------------------------------

def csv_header(exercise_ids: list[str]) -> list[str]:
    return ["student", "score", "max_score", *exercise_ids, "error"]


def csv_row(student: str, result: dict, exercise_ids: list[str]) -> list:
    """One spreadsheet row from a result as saved in JSON (`GradeResult.to_dict()`): its own figures
    (the exact ones where the file has them), rounded once here."""
    def figure(data: dict, key: str):
        value = (data.get("exact") or {}).get(key, data.get(key, ""))
        try:
            return _csv_number(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return ""
    by_id = {ex.get("id"): figure(ex, "score") for ex in result.get("exercises", []) if isinstance(ex, dict)}
    return [_csv_text(student), figure(result, "score"), figure(result, "max_score"),
            *(by_id.get(i, "") for i in exercise_ids), _csv_text(result.get("error") or "")]


def _csv_number(x) -> str:
    return format(float(round(exact(x), 4)), "g")


def _csv_text(text: str) -> str:
    """A cell a spreadsheet shows as text: no formula (=, +, -, @ first), no control character."""
    text = printable(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[list], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


FORMATS = {"gradescope": to_gradescope, "classroom": to_classroom, "junit": to_junit, "markdown": to_markdown}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.frontends.formats", description=__doc__.split("\n")[0])
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
