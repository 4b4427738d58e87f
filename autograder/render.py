"""Render a `GradeResult`: a coloured terminal report in the lecture's `cmp` style, and JSON.

Other formats (Gradescope, GitHub Classroom, JUnit, CSV, Markdown) register in `FORMATS`.
"""
from __future__ import annotations

import json
import math
from typing import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .verdicts import APPROX, ERROR, EXACT, NOT_IMPLEMENTED, TIMEOUT, WRONG
from .result import GradeResult, json_safe

STYLE = {EXACT: "bold green", APPROX: "green", WRONG: "bold red", ERROR: "red", TIMEOUT: "magenta",
         NOT_IMPLEMENTED: "yellow"}


def fmt_maxdiff(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return "0.0" if x == 0 else f"{x:.2e}"


def fmt_shape(shape) -> str:
    return "-" if shape is None else "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_points(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def shape_text(shape, expected) -> Text:
    """One shape where they agree; `got ≠ expected` in red where they do not."""
    if shape is None:
        return Text(fmt_shape(expected), style="dim")
    if list(shape) == list(expected or []):
        return Text(fmt_shape(shape))
    return Text(f"{fmt_shape(shape)} ≠ {fmt_shape(expected)}", style="red")


def verdict_text(verdict: str | None) -> Text:
    return Text(verdict or "-", style=STYLE.get(verdict or "", "dim"))


def to_terminal(result: GradeResult, console: Console | None = None) -> None:
    console = console or Console()
    if result.error:
        console.print(f"[bold red]Could not grade {result.submission}:[/] {result.error}")
    for ex in result.exercises:
        table = Table(title=f"{ex.id}  [dim]{fmt_points(ex.score)}/{fmt_points(ex.max_score)}[/]",
                      title_justify="left", show_lines=False, pad_edge=False, expand=False)
        has_local = any(c.local_verdict is not None for c in ex.checks)
        table.add_column("check", no_wrap=True)
        table.add_column("exact")
        table.add_column("approximate")
        table.add_column("maxdiff", justify="right")
        table.add_column("shape", no_wrap=True)
        if has_local:
            table.add_column("this step")
        table.add_column("points", justify="right")
        for c in ex.checks:
            compared = c.verdict in (EXACT, APPROX, WRONG)  # a stub, crash or timeout has nothing to compare
            exact = Text(str(c.verdict == EXACT) if compared else "-", style="green" if c.verdict == EXACT else "dim")
            approx = Text(str(c.passed), style="green" if c.passed else STYLE.get(c.verdict, ""))
            if not compared:
                approx = verdict_text(c.verdict)
            shape = shape_text(c.shape, c.expected_shape)
            row = [c.name, exact, approx, fmt_maxdiff(c.maxdiff), shape]
            if has_local:
                local = c.local_verdict
                row.append(Text("correct step, wrong upstream", style="yellow")
                           if local in (EXACT, APPROX) and not c.passed else verdict_text(local))
            row.append(f"{fmt_points(c.points)}/{fmt_points(c.max_points)}")
            table.add_row(*row)
        console.print(table)
        for c in ex.checks:  # a hint line for every wrong answer, under the table
            note = _note(c)
            if note:
                console.print(Text("  ✗ ", style="red") + Text(f"{c.name}: ", style="bold") + Text(note, style="cyan"))
        if ex.first_wrong_step:
            console.print(f"  first wrong step: [bold]{ex.first_wrong_step}[/]")
    style = "bold green" if result.score == result.max_score and result.max_score else "bold"
    console.print(Text(f"Total: {fmt_points(result.score)}/{fmt_points(result.max_score)}", style=style) +
                  Text(f"   (sandbox: {result.sandbox}; {'public and hidden' if result.hidden else 'public'} cases;"
                       f" {result.seconds:.1f} s)", style="dim"))


def _note(check) -> str:
    """The hint line under a check that is not right."""
    if check.passed or (check.local_verdict in (EXACT, APPROX)):
        return ""
    if check.verdict == NOT_IMPLEMENTED:
        return ""
    parts = []
    if check.mistake:
        parts.append(f"[{check.mistake}] {check.hint}".strip())
    elif check.hint:
        parts.append(check.hint)
    if check.message and check.message not in " ".join(parts):
        parts.append(check.message)
    return " - ".join(p for p in parts if p)


def json_dict(result: GradeResult) -> dict:
    return json_safe(result.to_dict())


FORMATS: dict[str, Callable[[GradeResult], str]] = {
    "json": lambda r: json.dumps(json_dict(r), indent=2, allow_nan=False) + "\n",
}

from .formats import FORMATS as _CI_FORMATS  # noqa: E402  gradescope, classroom, junit, markdown

FORMATS.update(_CI_FORMATS)
