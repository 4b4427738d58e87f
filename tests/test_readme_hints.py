"""The README's hint lists (one per assignment, "Hints: `id`, ...") are the catalogues' ids: every mistake an
assignment's exercises catalogue is listed, and every id listed is one the grader can give for it (its
catalogue, the generic patterns of `diagnose`, or a failure the grader itself names)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder.assignments import NAMES, exercises
from autograder.core.diagnose import FAILURE_IDS, GENERIC_MISTAKES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _without_parentheses(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")" and depth > 0
    return "".join(out)


def readme_hints(name: str) -> set[str]:
    """The ids in the README's hint list of an assignment: its bullet (`- **graphs**:`, `- **backprop ninja**:`),
    from "Hints" to the end of that sentence; backticked words in parentheses are examples, not ids."""
    bullet = re.search(r"^- \*\*" + re.escape(name.replace("_", " ")) + r"\*\*:(.*?)(?=^- \*\*|^\S|\Z)",
                       README, re.S | re.M)
    assert bullet, f"README.md has no bullet for {name}"
    text = _without_parentheses(bullet.group(1))
    start = re.search(r"Hints[^:`]*:", text)
    assert start, f"README.md's bullet for {name} has no hint list"
    sentence = re.split(r"\.(?:\s|$)", text[start.end():], maxsplit=1)[0]
    return set(re.findall(r"`([a-z_0-9]+)`", sentence))


def catalogue(name: str) -> set[str]:
    return {m.id for ex in exercises(name) for m in ex.mistakes}


@pytest.mark.parametrize("name", NAMES)
def test_every_catalogued_mistake_is_in_the_readme(name):
    missing = catalogue(name) - readme_hints(name)
    assert not missing, f"README.md's hint list for {name} lacks {sorted(missing)}"


@pytest.mark.parametrize("name", NAMES)
def test_the_readme_names_no_mistake_the_grader_cannot_give(name):
    known = catalogue(name) | {m.id for m in GENERIC_MISTAKES} | set(FAILURE_IDS)
    unknown = readme_hints(name) - known
    assert not unknown, f"README.md's hint list for {name} names {sorted(unknown)}, which no catalogue has"


def test_the_list_is_read_where_it_is():
    """The parser finds what a reader sees: a known id of each list, and nothing from another bullet."""
    assert "max_tie" in readme_hints("graphs") and "max_tie" not in readme_hints("backprop_ninja")
    assert "overwrite_not_accumulate" in readme_hints("micrograd")
    assert "dout" not in readme_hints("graphs")  # `dout` in a parenthesis is an example, not an id
