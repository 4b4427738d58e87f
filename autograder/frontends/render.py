"""Render a `GradeResult`: the terminal report in the lecture's `cmp` style, and JSON.

Other formats (Gradescope, GitHub Classroom, JUnit, CSV, Markdown) register in `FORMATS`. Every renderer
only shows the result: points and pass/fail come from it (result.py), never from here. The student's text
(messages, printed output) goes to rich as `Text`, never as markup, with control characters written out.
"""
from __future__ import annotations

import json
import re
import weakref
from typing import Callable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.frontends.formats import check_note, fmt, fmt_diff, fmt_shape, shown_maxdiff, shown_shape
from autograder.core.result import FAILED, PASSED_LOCALLY, ExerciseResult, GradeResult, json_safe, printable, printable_output
from autograder.runtime.verdicts import APPROX, ERROR, EXACT, NOT_IMPLEMENTED, TIMEOUT, WRONG

STYLE = {EXACT: "bold green", APPROX: "green", WRONG: "bold red", ERROR: "red", TIMEOUT: "magenta",
         NOT_IMPLEMENTED: "yellow"}
LOCAL_CREDIT = "correct step"      # the verdict column of a "correct step, wrong upstream" row
OUTPUT_LINES = 20                  # lines of the student's printed output shown under an exercise
SUMMARISE_AT = 2                   # this many "correct step, wrong upstream" rows or more become one line

fmt_maxdiff = fmt_diff
fmt_points = fmt


NAME_WIDTH = 16                    # check names up to this long are never broken (longer ones fold)
SHAPE_WIDTH = 17                   # a `got≠expected` wider than this is written without spaces


def shape_text(shape, expected) -> Text:
    """One shape where they agree; `got ≈ expected` in yellow where they differ only by leading size-1
    dimensions (accepted, with a note under the table); `got ≠ expected` in red where they differ (without
    spaces where that is wide: `(32,3,10)≠(32,30)`, so that the check's name keeps its room at 80 columns)."""
    if shape is None:
        return Text(fmt_shape(expected), style="dim")
    if list(shape) == list(expected or []):
        return Text(fmt_shape(shape))
    mark, style = ("≈", "yellow") if leading_ones_only(shape, expected) else ("≠", "red")
    text = f"{fmt_shape(shape)} {mark} {fmt_shape(expected)}"
    if len(text) > SHAPE_WIDTH:
        text = text.replace(", ", ",").replace(f" {mark} ", mark)
    return Text(text, style=style)


def leading_ones_only(shape, expected) -> bool:
    """The shapes differ only by leading size-1 dimensions, which the comparison accepts (compare.py)."""
    def strip(s):
        s = list(s or [])
        while s and s[0] == 1:
            s = s[1:]
        return s
    return shape is not None and expected is not None and list(shape) != list(expected) and strip(shape) == strip(expected)


def verdict_text(verdict: str | None) -> Text:
    return Text(verdict or "-", style=STYLE.get(verdict or "", "dim"))


COMPARED = (EXACT, APPROX, WRONG)   # verdicts where values were compared (not a stub, crash or timeout)


def _verdict_cell(check) -> Text:
    """One verdict column (the README's): exact, approx, wrong, correct step (right given a wrong
    upstream), or why nothing was compared (not_implemented, error, timeout)."""
    if check.status == PASSED_LOCALLY and check.verdict in COMPARED:
        return Text(LOCAL_CREDIT, style="yellow")
    return verdict_text(check.verdict)


def _summarised(ex: ExerciseResult) -> list:
    """The "correct step, wrong upstream" checks after the first wrong step, shown as one line when there
    are several: they are right given what the wrong step fed them."""
    names = [c.name for c in ex.checks]
    if not ex.first_wrong_step or ex.first_wrong_step not in names:
        return []
    later = ex.checks[names.index(ex.first_wrong_step) + 1:]
    fed = [c for c in later if c.status == PASSED_LOCALLY]
    return fed if len(fed) >= SUMMARISE_AT else []


def exercise_table(ex: ExerciseResult) -> Table:
    """One exercise's checks. Verdict, maxdiff, shape and points never wrap or shorten; only the check
    name may fold, so the table fits 80 columns."""
    title = Text(ex.id, style="bold") + Text(f"  {fmt(ex.score)}/{fmt(ex.max_score)}", style="dim")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False,
                  padding=(0, 1, 0, 0), show_edge=False)  # 2 spaces between columns: 5 more for the name
    # The name is whole: the column is as wide as the longest name (up to NAME_WIDTH; only longer ones fold).
    longest = max((len(printable(c.name)) for c in ex.checks), default=6)
    table.add_column("check", overflow="fold", min_width=max(6, min(longest, NAME_WIDTH)))
    for name, justify in (("verdict", "left"), ("maxdiff", "right"), ("shape", "left"), ("points", "right")):
        table.add_column(name, justify=justify, no_wrap=True, overflow="ignore")
    folded = _summarised(ex)
    for c in ex.checks:
        if any(c is f for f in folded):
            continue
        table.add_row(Text(printable(c.name)), _verdict_cell(c), Text(fmt_diff(shown_maxdiff(c))),
                      shape_text(shown_shape(c), c.expected_shape),
                      Text(f"{fmt(c.points)}/{fmt(c.max_points)}", style="" if c.passed else "red"))
    if folded:
        earned = sum(c.points for c in folded)
        most = sum(c.max_points for c in folded)
        table.add_row(Text(f"+{len(folded)} later steps", style="yellow"), Text(LOCAL_CREDIT, style="yellow"),
                      Text("-", style="dim"), Text("-", style="dim"), Text(f"{fmt(earned)}/{fmt(most)}"))
    return table


def exercise_notes(ex: ExerciseResult) -> list:
    """What goes under an exercise's table: why its code stopped and where, a hint for every check short
    of its points (naming the case its row describes), the summary of the steps downstream of the first
    wrong one, and the student's printed output. Lines wrap under their own text, not under the marker."""
    notes = Table.grid(padding=(0, 0))
    notes.add_column(no_wrap=True)
    notes.add_column(overflow="fold")
    if ex.message:
        notes.add_row(Text("  ! ", style="bold red"), Text(printable(ex.message)))
        if ex.where and ex.where not in ex.message:
            notes.add_row(Text("    "), Text("at ", style="dim") + Text(printable(ex.where)))
    unreached = _unreached(ex)
    hinted: set = set()
    for c in ex.checks:
        if c.status == FAILED and c.verdict != NOT_IMPLEMENTED:
            if any(c is u for group in unreached.values() for u in group):
                group = next(g for g in unreached.values() if any(c is u for u in g))
                if c is group[0]:  # one line for everything one raise left unreached
                    notes.add_row(Text("  ✗ ", style="red"), _unreached_line(group))
                continue
            note = check_note(c, case=False)
            if c.mistake and c.hint and (c.mistake, c.hint) in hinted:
                # the same mistake's hint once per exercise; later checks say which it is and their details
                note = printable(f"[{c.mistake}] as above" + (f" - {c.message}" if c.message and c.message not in c.hint
                                                                else ""))
            elif c.mistake and c.hint:
                hinted.add((c.mistake, c.hint))
            said = ex.message and note.rstrip() == printable(ex.message).rstrip()  # the "!" line above says it
            if note and note != c.verdict and not said:
                label = Text(f" ({printable(c.case_label)})", style="dim") if c.case_label else Text("")
                notes.add_row(Text("  ✗ ", style="red"),
                              Text(printable(c.name), style="bold") + label + Text(": ") + Text(note, style="cyan"))
    _shape_notes(ex, notes)
    if ex.first_wrong_step:
        notes.add_row(Text("  "), Text("first wrong step: ") + Text(printable(ex.first_wrong_step), style="bold"))
    folded = _summarised(ex)
    if folded:
        names = ", ".join(printable(c.name) for c in folded)
        notes.add_row(Text("  ↳ ", style="yellow"),
                      Text(f"{len(folded)} later steps correct given their inputs", style="yellow")
                      + Text(f" (correct step, wrong upstream; they keep their points): {names}", style="dim"))
    for c in ex.checks:
        if c.status == PASSED_LOCALLY and not any(c is f for f in folded):
            own = _why_correct(c.message)  # the judge's own words: "correct; depends on tanh_backward, ..."
            notes.add_row(Text("  ↳ ", style="yellow"),
                          Text(printable(c.name), style="bold")
                          + (Text(f": {printable(own)}", style="yellow") + Text(" (it keeps its points)", style="dim")
                             if own else Text(": correct given its inputs", style="yellow")
                             + Text(" (correct step, wrong upstream; it keeps its points)", style="dim")))
    lines: list = [notes] if notes.row_count else []
    if ex.output:
        out = printable_output(ex.output).rstrip("\n").split("\n")
        shown = out[-OUTPUT_LINES:]
        lines.append(Text("  printed by your code (public cases):", style="dim"))
        if len(out) > len(shown):
            lines.append(Text(f"    … {len(out) - len(shown)} earlier lines not shown", style="dim"))
        lines.extend(Text("    " + line, no_wrap=False) for line in shown)
    return lines


def _shape_notes(ex: ExerciseResult, notes: Table) -> None:
    """The note for a shape accepted with leading size-1 dimensions (the HTML report shows the same)."""
    for c in ex.checks:
        if leading_ones_only(c.shape, c.expected_shape):
            notes.add_row(Text("  ≈ ", style="yellow"),
                          Text(printable(c.name), style="bold") + Text(f": shape {fmt_shape(c.shape)} accepted for "
                          f"{fmt_shape(c.expected_shape)} (they differ only by leading size-1 dimensions, which "
                          "broadcasting fills the same way)", style="dim"))


NOT_REACHED = "not reached: "


def _unreached(ex: ExerciseResult) -> dict[str, list]:
    """The failed checks an exception left unreached ("not reached: RuntimeError at line 40"), grouped by that
    message: one raise, one group, shown as one line."""
    groups: dict[str, list] = {}
    for c in ex.checks:
        if c.status == FAILED and c.verdict == ERROR and (c.message or "").startswith(NOT_REACHED):
            groups.setdefault(c.message, []).append(c)
    return {m: g for m, g in groups.items() if len(g) >= 2}


def _unreached_line(group: list) -> Text:
    why = printable(group[0].message[len(NOT_REACHED):])
    return (Text(f"{len(group)} left unreached", style="bold") + Text(f" by the {why}: ", style="cyan")
            + Text(", ".join(printable(c.name) for c in group)))


# A file that does not compile fails every exercise in it the same way: the error is shown once per console
# (line, caret, file), each exercise then gets one line, not a table of "error" rows.
_COMPILE_FAILURE = re.compile(r"^(SyntaxError|IndentationError|TabError): ", re.M)
_SHOWN_ERRORS: "weakref.WeakKeyDictionary[Console, set]" = weakref.WeakKeyDictionary()


def _compile_failure(ex: ExerciseResult) -> bool:
    return bool(ex.checks and ex.message and _COMPILE_FAILURE.search(ex.message)
                and all(c.verdict == ERROR for c in ex.checks))


def _render_compile_failure(ex: ExerciseResult, console: Console) -> None:
    shown = _SHOWN_ERRORS.setdefault(console, set())
    key = (ex.message, ex.where)
    console.print(Text(ex.id, style="bold") + Text(f"  {fmt(ex.score)}/{fmt(ex.max_score)}", style="dim")
                  + Text(f"  not run: {len(ex.checks)} check{'s' * (len(ex.checks) != 1)}", style="red"))
    if key in shown:
        console.print(Text("  ✗ ", style="red") + Text("the same error as above", style="dim")
                      + (Text(f" ({printable(ex.where)})", style="dim") if ex.where else Text("")))
        return
    shown.add(key)
    console.print(Text(printable(ex.message)))
    if ex.where and ex.where not in ex.message:
        console.print(Text("  at ", style="dim") + Text(printable(ex.where)))


def render_exercise(ex: ExerciseResult, console: Console, kept: list | None = None) -> None:
    """`kept`: the exercise's public cases (case, outputs, truth), for the worked element."""
    if _compile_failure(ex):
        _render_compile_failure(ex, console)
        return
    if ex.checks:
        console.print(exercise_table(ex))
    else:  # nothing was judged (the code could not run at all): the title and why
        console.print(Text(ex.id, style="bold") + Text(f"  {fmt(ex.score)}/{fmt(ex.max_score)}", style="dim"))
    for line in exercise_notes(ex):
        console.print(line)
    if kept:
        render_worked(ex, kept, console)


def total_line(result: GradeResult, not_graded=()) -> Text:
    """`Total: score/max`; with the assignments `check` found no files for (`not_graded`: (name, files,
    points, ...)), out of the whole course, naming what was not graded."""
    missing = sum(points for _, _, points, *_ in not_graded)
    whole = result.max_score + missing
    style = "bold green" if result.score == whole and whole else "bold"
    text = Text(f"Total: {fmt(result.score)}/{fmt(whole)}", style=style)
    for _, files, points, *_ in not_graded:
        text += Text(f"; {', '.join(files)} not found: {fmt(points)} points not graded", style="bold red")
    return (text +
            Text(f"   (sandbox: {printable(result.sandbox)}; {'public and hidden' if result.hidden else 'public'}"
                 f" cases; {result.seconds:.1f} s)", style="dim"))


def render_worked(ex: ExerciseResult, kept: list, console: Console) -> None:
    """Under a wrong gradient: one element worked through with the chain rule (worked.py; public cases)."""
    from autograder.frontends.worked import worked_element
    worked = worked_element(ex, kept)
    for i, line in enumerate(worked.lines() if worked else []):
        console.print(Text("  " + line, style="bold" if i == 0 else ""), overflow="fold")


def history_text(line: str) -> Text:
    """The line that says what changed since the student's last run (history.py)."""
    return Text(line, style="cyan")


def render_error(result: GradeResult, console: Console) -> None:
    if result.error:
        console.print(Text(f"Could not grade {printable(result.submission)}: ", style="bold red")
                      + Text(printable(result.error)))


def to_terminal(result: GradeResult, console: Console | None = None) -> None:
    console = console or Console()
    render_error(result, console)
    for ex in result.exercises:
        render_exercise(ex, console)
    console.print(total_line(result))


def json_dict(result: GradeResult) -> dict:
    return json_safe(result.to_dict())


FORMATS: dict[str, Callable[[GradeResult], str]] = {
    "json": lambda r: json.dumps(json_dict(r), indent=2, allow_nan=False) + "\n",
}

from autograder.frontends.formats import FORMATS as _CI_FORMATS  # noqa: E402  gradescope, classroom, junit, markdown

FORMATS.update(_CI_FORMATS)


def _why_correct(message: str) -> str:
    """The part of a locally passed check's message that says why it is right ("correct; depends on X,
    which is wrong", "backward() is correct; depends on ...", "...; correct loop: ..."), without its
    parenthesised details; '' where it has none."""
    message = message or ""
    if "; correct " in message:
        text = "correct " + message.split("; correct ", 1)[1]
    elif "depends on" in message or "; depend on " in message or message.startswith("correct given "):
        text = message
    else:
        return ""
    return text.split(" (", 1)[0].strip()
