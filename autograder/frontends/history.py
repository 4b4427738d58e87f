"""What changed since the student's last run: "fixed: ...; newly wrong: ...; score 36 -> 41".

Every check a student runs (`autograder check`, `watch`, the notebook's `check()`) ends with this line.
It compares the result with the student's own previous one, kept in the submission's folder under
`.backprop-lab/` (a folder that ignores itself in git, and that grading for credit never reads: it holds
public-case verdicts only, computed on the student's machine). The file keeps the latest known state of
every exercise, so a run of one assignment (`-a graphs`) is compared with the last run of *that*
assignment, and leaves the others as they were.

Nothing here may stop a check: a missing, unreadable or corrupt file is a first run; a folder that cannot
be written is said in the line, and the line is still printed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from autograder.core.result import GradeResult

FOLDER = ".backprop-lab"
LAST = "last.json"
VERSION = 1
SHOWN = 6          # names listed per kind before "+k more"


@dataclass
class Change:
    """The difference between two runs over the exercises of the newer one."""
    first: bool                               # no previous result for any of these exercises
    fixed: list[str] = field(default_factory=list)
    newly_wrong: list[str] = field(default_factory=list)
    before: Fraction | None = None            # the score of these exercises last time (None: first run)
    after: Fraction = Fraction(0)
    max_score: Fraction = Fraction(0)
    note: str = ""                            # e.g. why the result could not be saved


def snapshot(result: GradeResult) -> dict:
    """What is kept of a result: per exercise its exact score and which checks earned full points."""
    return {ex.id: {"score": str(ex.score), "max_score": str(ex.max_score),
                    "passed": {c.name: bool(c.passed) for c in ex.checks}}
            for ex in result.exercises}


def _label(exercise_id: str, check: str | None, several_checks: bool) -> str:
    short = exercise_id.split(".", 1)[-1]
    return f"{short} {check}" if several_checks and check is not None else short


def compare(previous: dict, current: dict) -> Change:
    """`previous` and `current` as `snapshot` writes them (previous may hold other exercises too)."""
    known = {k: v for k, v in previous.items() if k in current}
    change = Change(first=not known)
    change.after = sum((Fraction(v["score"]) for v in current.values()), Fraction(0))
    change.max_score = sum((Fraction(v["max_score"]) for v in current.values()), Fraction(0))
    if known:
        # An exercise new since last time (another assignment added) counts as 0 before.
        change.before = sum((Fraction(v["score"]) for v in known.values()), Fraction(0))
    for ex_id, now in current.items():
        old = known.get(ex_id)
        if old is None:
            continue
        several = len(now["passed"]) > 1
        for name, passed in now["passed"].items():
            was = old.get("passed", {}).get(name)
            if was is None:
                continue
            if passed and not was:
                change.fixed.append(_label(ex_id, name, several))
            elif was and not passed:
                change.newly_wrong.append(_label(ex_id, name, several))
    return change


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else "")


def line(change: Change) -> str:
    from autograder.frontends.formats import fmt  # the one rounding of exact points
    if change.first:
        text = f"first run here: score {fmt(change.after)}/{fmt(change.max_score)} (the next run says what changed)"
    else:
        text = (f"since the last run: fixed: {_names(change.fixed) or 'nothing'}; "
                f"newly wrong: {_names(change.newly_wrong) or 'nothing'}; "
                f"score {fmt(change.before)} -> {fmt(change.after)}")
    return text + (f" ({change.note})" if change.note else "")


def history_file(folder: Path | str, name: str = LAST) -> Path:
    return Path(folder) / FOLDER / name


def load(path: Path) -> dict:
    """The exercises of the last result, or {} (none, unreadable, or written by another version)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("exercises"), dict):
        return {}
    out = {}
    for ex_id, entry in data["exercises"].items():
        try:
            Fraction(entry["score"]), Fraction(entry["max_score"])  # noqa: B018  (validates)
            if not isinstance(entry["passed"], dict):
                continue
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        out[ex_id] = entry
    return out


def save(path: Path, exercises: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():  # the folder keeps itself out of git in any repository
        ignore.write_text("# backprop-lab's record of your last check (for 'what changed'); never graded\n*\n")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"version": VERSION, "exercises": exercises}, indent=1, sort_keys=True),
                   encoding="utf-8")
    os.replace(tmp, path)


def record(folder: Path | str, result: GradeResult, name: str = LAST) -> Change | None:
    """Compare `result` with the last one kept in `folder`, keep `result` as the new last one, and return
    the change (None where there is nothing to compare: a result that could not be graded at all)."""
    if result.error or result.hidden or not result.exercises:
        return None
    path = history_file(folder, name)
    previous = load(path)
    current = snapshot(result)
    change = compare(previous, current)
    try:
        save(path, {**previous, **current})
    except OSError as exc:
        change.note = f"could not keep this result in {path}: {exc.strerror or exc}"
    return change


def record_line(folder: Path | str, result: GradeResult, name: str = LAST) -> str:
    """`record`, as the line a front end prints ('' where there is nothing to say)."""
    change = record(folder, result, name)
    return line(change) if change is not None else ""
