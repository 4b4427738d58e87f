"""What the class got wrong: `autograder class-report RESULTS_DIR [-o OUT] [--roster roster.csv] [--names]`.

Reads only result JSONs (as `grade-all` writes them: OUTDIR/<id>.json), so it works on a Dask run or on
results merged from several machines, and writes two files: `class_report.html`, one self-contained page
(inline CSS and SVG, no network, one small script that only shows or hides ready-made sections), and
`class_report.csv`, the same figures as rows. Per exercise and per check: how many students got it right,
approx, right given a wrong upstream, wrong, error, not implemented; the commonest catalogued mistakes with
their counts, share of the class, hint and one anonymised example (a public case's numbers next to the
truth: hidden cases never carry numbers); the distribution of the first wrong step; which mistakes travel
together; a score histogram per assignment; who did not submit (from a roster) or could not be graded, and
why. With a roster (columns: student id, section, ta; optionally name) the page has one section per
section and per TA, and a selector. No student's id or name is shown unless `--names`; every string that
comes from a result is HTML-escaped (a student's text reaches results through messages and errors).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

HTML_NAME, CSV_NAME = "class_report.html", "class_report.csv"
# A check's outcome for one student: the columns of the per-check table, in order.
OUTCOMES = ("right", "approx", "correct_step", "wrong", "error", "not_implemented")
OUTCOME_TITLES = {"right": "right (exact)", "approx": "approx", "correct_step": "correct step, wrong upstream",
                  "wrong": "wrong", "error": "error / timeout", "not_implemented": "not implemented"}
TOP_MISTAKES = 8          # per exercise
TOP_PAIRS = 15
HIST_BINS = 10
ROSTER_ID = ("student", "student_id", "id", "sid", "login", "username")
NOT_A_RESULT = {HTML_NAME, CSV_NAME}


class ReportError(Exception):
    """The report cannot be made as asked (no such folder, an unreadable roster)."""


def esc(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


# -- reading ------------------------------------------------------------------------------------------------

@dataclass
class Student:
    id: str
    result: dict | None = None          # None: no result (did not submit, or the result file was unreadable)
    why_not_graded: str = ""
    section: str = ""
    ta: str = ""
    name: str = ""


def read_results(folder: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Every result JSON in `folder`: id -> result, and id -> why a file could not be read."""
    results, unreadable = {}, {}
    for path in sorted(Path(folder).glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            unreadable[path.stem] = f"result file unreadable ({type(exc).__name__})"
            continue
        if not isinstance(data, dict) or not isinstance(data.get("exercises", []), list):
            unreadable[path.stem] = "result file is not a grading result"
            continue
        results[str(data.get("student") or path.stem)] = data
    return results, unreadable


def read_roster(path: Path) -> dict[str, dict]:
    """id -> {section, ta, name} from a CSV whose header names an id column (student, student_id, id...)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read the roster {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    id_col = next((fields[k] for k in ROSTER_ID if k in fields), None)
    if id_col is None:
        raise ReportError(f"the roster {path} has no student id column (one of: {', '.join(ROSTER_ID)}); "
                          f"its columns: {', '.join(reader.fieldnames or []) or 'none'}")
    col = {k: fields.get(k) for k in ("section", "ta", "name")}
    roster = {}
    for row in reader:
        sid = (row.get(id_col) or "").strip()
        if sid:
            roster[sid] = {k: (row.get(c) or "").strip() if c else "" for k, c in col.items()}
    return roster


def students_from(folder: Path, roster: dict[str, dict] | None) -> list[Student]:
    results, unreadable = read_results(folder)
    ids = list(roster) if roster else []
    ids += [s for s in sorted(set(results) | set(unreadable)) if s not in (roster or {})]
    out = []
    for sid in ids:
        r = results.get(sid)
        info = (roster or {}).get(sid, {})
        why = unreadable.get(sid, "")
        if r is None and not why:
            why = "did not submit"
        elif r is not None and r.get("error") and not r.get("exercises"):
            why = f"could not be graded: {r['error']}"
        out.append(Student(sid, r, why, info.get("section", ""), info.get("ta", ""), info.get("name", "")))
    return out


# -- counting -----------------------------------------------------------------------------------------------

def outcome(check: dict) -> str:
    verdict = check.get("verdict")
    if check.get("status") == "passed_locally":
        return "correct_step"
    return {"exact": "right", "approx": "approx", "wrong": "wrong", "error": "error", "timeout": "error",
            "not_implemented": "not_implemented"}.get(verdict, "error")


@dataclass
class Stats:
    """Everything the page shows for one group of students."""
    label: str
    n_students: int = 0
    n_graded: int = 0
    exercises: dict = field(default_factory=dict)      # id -> {"title", "checks": {name: Counter}, "students"}
    mistakes: dict = field(default_factory=dict)       # exercise id -> {mistake: {...}}
    first_wrong: dict = field(default_factory=dict)    # exercise id -> Counter(step)
    pairs: Counter = field(default_factory=Counter)
    scores: dict = field(default_factory=dict)         # assignment -> [(score, max)]
    missing: list = field(default_factory=list)        # (student, why)


def assignment_of(exercise_id: str) -> str:
    return exercise_id.split(".", 1)[0]


def compute(label: str, students: list[Student]) -> Stats:
    st = Stats(label, n_students=len(students))
    for s in students:
        r = s.result
        if r is None or (r.get("error") and not r.get("exercises")):
            st.missing.append((s, s.why_not_graded))
            continue
        st.n_graded += 1
        own_mistakes = set()
        per_assignment: dict[str, list[float]] = {}
        for ex in r.get("exercises") or []:
            if not isinstance(ex, dict) or not isinstance(ex.get("id"), str):
                continue
            eid = ex["id"]
            e = st.exercises.setdefault(eid, {"title": ex.get("title") or "", "checks": {}, "students": 0})
            e["students"] += 1
            got = per_assignment.setdefault(assignment_of(eid), [0.0, 0.0])
            got[0] += _num(ex.get("score"))
            got[1] += _num(ex.get("max_score"))
            for c in ex.get("checks") or []:
                if not isinstance(c, dict):
                    continue
                name = str(c.get("name"))
                e["checks"].setdefault(name, Counter())[outcome(c)] += 1
                m = c.get("mistake")
                if m and outcome(c) not in ("right", "approx", "correct_step"):
                    entry = st.mistakes.setdefault(eid, {}).setdefault(str(m), {
                        "students": set(), "checks": Counter(), "hints": Counter(), "example": None})
                    entry["students"].add(s.id)
                    entry["checks"][name] += 1
                    if c.get("hint"):
                        entry["hints"][str(c["hint"])] += 1
                    if entry["example"] is None and _example(c.get("example")):
                        entry["example"] = {"check": name, "case": c.get("case_label") or "", **_example(c["example"])}
                    own_mistakes.add(f"{eid}: {m}")
            outcomes = {outcome(c) for c in ex.get("checks") or [] if isinstance(c, dict)}
            # Where the code never ran (an import error, a timeout on every check), no step went wrong first.
            if ex.get("first_wrong_step") and outcomes != {"error"}:
                st.first_wrong.setdefault(eid, Counter())[str(ex["first_wrong_step"])] += 1
        for a, (score, mx) in per_assignment.items():
            st.scores.setdefault(a, []).append((score, mx))
        st.pairs.update(combinations(sorted(own_mistakes), 2))
    return st


def _num(x) -> float:
    """A number from a result file; anything else (or inf/NaN) as 0."""
    try:
        x = float(x)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _example(raw) -> dict | None:
    """A result's example as the page shows it, or None when it is not the shape `value_example` writes."""
    if not isinstance(raw, dict):
        return None
    index, got, expected = raw.get("index"), raw.get("got"), raw.get("expected")
    if not all(isinstance(v, list) for v in (index, got, expected)) or \
            not all(isinstance(ix, list) for ix in index):
        return None
    return {"index": index[:8], "got": got[:8], "expected": expected[:8]}


# -- the page -----------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.hint{color:#444;max-width:40em;text-align:left}
.bar{display:inline-block;height:10px;background:#c33;vertical-align:middle}
.ok{color:#060}.bad{color:#a00}.muted{color:#777}code{background:#f6f6f6;padding:0 3px}
.group{display:block}select{font-size:1em}
"""

# Only shows the chosen group's section: no data goes through it, so nothing a student wrote can reach it.
SCRIPT = """
document.getElementById('group').addEventListener('change', function (e) {
  document.querySelectorAll('.group').forEach(function (g) {
    g.style.display = (g.dataset.group === e.target.value) ? 'block' : 'none';
  });
});
document.querySelectorAll('.group').forEach(function (g, i) { g.style.display = i ? 'none' : 'block'; });
"""


SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.0f}%" if d else "-"


def who(s: Student, names: bool, anon: dict) -> str:
    """How the page names a student: their id (and roster name) with --names, else an anonymous number."""
    if names:
        return esc(s.id + (f" ({s.name})" if s.name else ""))
    return f"student #{anon.setdefault(s.id, len(anon) + 1)}"


def score_bin(score: float, mx: float) -> int:
    """The histogram bin of a score out of `mx`: tenths, the last one including full marks."""
    frac = score / mx if mx > 0 else 0.0
    return min(HIST_BINS - 1, max(0, int(frac * HIST_BINS)))


def histogram_svg(values: list[tuple[float, float]]) -> str:
    """Scores as a share of the maximum, in HIST_BINS bins: an inline SVG bar chart."""
    bins = [0] * HIST_BINS
    for score, mx in values:
        bins[score_bin(score, mx)] += 1
    top = max(bins) or 1
    w, h, bw = 420, 140, 40
    bars = []
    for i, n in enumerate(bins):
        bh = round(110 * n / top)
        x = 10 + i * bw
        bars.append(f'<rect x="{x}" y="{120 - bh}" width="{bw - 4}" height="{bh}" fill="#4a7ab5">'
                    f'<title>{i * 10}-{(i + 1) * 10}%: {n}</title></rect>'
                    f'<text x="{x + bw / 2 - 2}" y="{116 - bh}" font-size="10" text-anchor="middle">{n or ""}</text>'
                    f'<text x="{x + bw / 2 - 2}" y="134" font-size="9" text-anchor="middle">{i * 10}%</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">{"".join(bars)}</svg>'


def _example_html(ex: dict | None) -> str:
    if not ex:
        return '<span class="muted">none kept</span>'
    rows = []
    for ix, g, e in zip(ex.get("index") or [], ex.get("got") or [], ex.get("expected") or []):
        where = esc(ex.get("check")) + (f"[{esc(', '.join(str(i) for i in ix))}]" if ix else "")
        rows.append(f"<code>{where}</code>: {esc(_fmt(g))} <span class='muted'>(truth {esc(_fmt(e))})</span>")
    head = f'<span class="muted">{esc(ex.get("case"))}</span><br>' if ex.get("case") else ""
    return head + "<br>".join(rows)


def _fmt(x) -> str:
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return str(x)


def group_html(st: Stats, names: bool, anon: dict) -> list[str]:
    out = [f"<p>{st.n_students} students, {st.n_graded} graded.</p>"]
    out.append("<h2>Scores</h2>")
    for a in sorted(st.scores):
        vals = st.scores[a]
        mean = sum(s for s, _ in vals) / len(vals)
        mx = max((m for _, m in vals), default=0)
        out.append(f"<h3>{esc(a)}</h3><p>mean {mean:.2f} of {mx:g}, {len(vals)} students</p>{histogram_svg(vals)}")
    out.append("<h2>Exercises and checks</h2>")
    for eid, e in st.exercises.items():
        out.append(f"<h3>{esc(eid)} <span class='muted'>{esc(e['title'])}</span></h3>")
        out.append("<table><tr><th class='l'>check</th>" + "".join(f"<th>{esc(OUTCOME_TITLES[o])}</th>"
                                                              for o in OUTCOMES) + "</tr>")
        for name, counts in e["checks"].items():
            n = sum(counts.values())
            cells = "".join(f"<td>{counts[o]} <span class='muted'>{pct(counts[o], n)}</span></td>" if counts[o]
                            else "<td class='muted'>0</td>" for o in OUTCOMES)
            out.append(f"<tr><td class='l'>{esc(name)}</td>{cells}</tr>")
        out.append("</table>")
        mistakes = st.mistakes.get(eid, {})
        if mistakes:
            out.append("<table><tr><th class='l'>mistake</th><th>students</th><th>share</th><th class='l'>checks"
                       "</th><th class='l'>hint</th><th class='l'>an example (public case, anonymised)</th></tr>")
            ranked = sorted(mistakes.items(), key=lambda kv: (-len(kv[1]["students"]), kv[0]))[:TOP_MISTAKES]
            for m, d in ranked:
                n = len(d["students"])
                hint = d["hints"].most_common(1)[0][0] if d["hints"] else ""
                checks = ", ".join(f"{c} ({k})" for c, k in d["checks"].most_common(6))
                out.append(f"<tr><td class='l'><code>{esc(m)}</code></td><td>{n}</td><td>{pct(n, e['students'])}"
                           f"<br><span class='bar' style='width:{round(60 * n / max(e['students'], 1))}px'></span>"
                           f"</td><td class='l'>{esc(checks)}</td><td class='hint'>{esc(hint)}</td>"
                           f"<td class='l'>{_example_html(d['example'])}</td></tr>")
            out.append("</table>")
        if eid in st.first_wrong:
            fw = st.first_wrong[eid]
            order = list(e["checks"])
            total = sum(fw.values())
            out.append(f"<p><b>Where students first go wrong</b> ({total} students with a wrong step):</p><table>"
                       "<tr><th class='l'>first wrong step</th><th>students</th><th class='l'></th></tr>")
            for step, n in sorted(fw.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
                out.append(f"<tr><td class='l'>{esc(step)}</td><td>{n}</td><td class='l'><span class='bar' "
                           f"style='width:{round(200 * n / max(fw.values()))}px'></span> {pct(n, total)}</td></tr>")
            out.append("</table>")
    out.append("<h2>Mistakes that travel together</h2>")
    if st.pairs:
        out.append("<table><tr><th class='l'>mistake</th><th class='l'>with</th><th>students</th></tr>")
        for (a, b), n in sorted(st.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PAIRS]:
            out.append(f"<tr><td class='l'>{esc(a)}</td><td class='l'>{esc(b)}</td><td>{n}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>no student made two catalogued mistakes</p>")
    out.append("<h2>Not submitted or not graded</h2>")
    if st.missing:
        reasons = Counter(why for _, why in st.missing)
        out.append("<table><tr><th class='l'>why</th><th>students</th></tr>" + "".join(
            f"<tr><td class='l'>{esc(w)}</td><td>{n}</td></tr>" for w, n in reasons.most_common()) + "</table>")
        out.append("<ul>" + "".join(f"<li>{who(s, names, anon)}: {esc(why)}</li>" for s, why in st.missing) + "</ul>")
    else:
        out.append("<p class='muted'>everyone was graded</p>")
    return out


def groups_of(students: list[Student]) -> list[tuple[str, list[Student]]]:
    groups = [("everyone", students)]
    for key, what in (("section", "section"), ("ta", "TA")):
        values = sorted({getattr(s, key) for s in students if getattr(s, key)})
        groups += [(f"{what} {v}", [s for s in students if getattr(s, key) == v]) for v in values]
    return groups


def render_html(groups: list[Stats], names: bool, source: str) -> str:
    anon: dict = {}
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             # Defence in depth: only the page's own script (by its hash) may run, and nothing loads.
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
             f"img-src data:; script-src '{SCRIPT_HASH}'\">",
             f"<title>Class report</title><style>{CSS}</style></head><body>",
             f"<h1>What the class got wrong</h1><p class='muted'>from {esc(source)}</p>"]
    if len(groups) > 1:
        parts.append("<p><label>Show: <select id='group'>" + "".join(
            f"<option value='{i}'>{esc(g.label)} ({g.n_students})</option>" for i, g in enumerate(groups))
            + "</select></label></p>")
    for i, g in enumerate(groups):
        parts.append(f"<div class='group' data-group='{i}'>" + (f"<h1>{esc(g.label)}</h1>" if len(groups) > 1 else ""))
        parts.extend(group_html(g, names, anon))
        parts.append("</div>")
    if len(groups) > 1:
        parts.append(f"<script>{SCRIPT}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_csv(groups: list[Stats]) -> str:
    """The page's figures as rows: group, kind, exercise, check, key, count, share (of the group's students
    graded on that exercise, or of the group). No student ids."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "kind", "exercise", "check", "key", "count", "share"])

    def share(n, d):
        return f"{n / d:.4f}" if d else ""
    for g in groups:
        for eid, e in g.exercises.items():
            for name, counts in e["checks"].items():
                for o in OUTCOMES:
                    w.writerow([g.label, "outcome", eid, name, o, counts[o], share(counts[o], sum(counts.values()))])
            for m, d in sorted(g.mistakes.get(eid, {}).items()):
                n = len(d["students"])
                w.writerow([g.label, "mistake", eid, ";".join(d["checks"]), m, n, share(n, e["students"])])
            for step, n in g.first_wrong.get(eid, {}).items():
                w.writerow([g.label, "first_wrong_step", eid, "", step, n, share(n, e["students"])])
        for (a, b), n in sorted(g.pairs.items()):
            w.writerow([g.label, "mistake_pair", "", "", f"{a} + {b}", n, share(n, g.n_graded)])
        for a, vals in sorted(g.scores.items()):
            for i in range(HIST_BINS):
                n = sum(1 for s, mx in vals if score_bin(s, mx) == i)
                w.writerow([g.label, "score_bin", a, "", f"{i * 10}-{(i + 1) * 10}%", n, share(n, len(vals))])
        for why, n in Counter(why for _, why in g.missing).most_common():
            w.writerow([g.label, "not_graded", "", "", why, n, share(n, g.n_students)])
    return buf.getvalue()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_class_report(results_dir: Path, out_dir: Path | None = None, roster: Path | None = None,
                       names: bool = False) -> tuple[Path, Path]:
    """Write class_report.html and class_report.csv into `out_dir` (default: the results folder)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportError(f"no such folder: {results_dir}")
    out_dir = Path(out_dir) if out_dir else results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    students = students_from(results_dir, read_roster(roster) if roster else None)
    groups = [compute(label, members) for label, members in groups_of(students)]
    page, table = out_dir / HTML_NAME, out_dir / CSV_NAME
    _write(page, render_html(groups, names, results_dir.name))
    _write(table, render_csv(groups))
    return page, table


def cmd_class_report(args) -> int:
    started = time.perf_counter()
    try:
        page, table = write_class_report(Path(args.results), Path(args.output) if args.output else None,
                                         Path(args.roster) if args.roster else None, args.names)
    except ReportError as exc:
        print(f"autograder class-report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {page} and {table} in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("class-report", help="what the class got wrong: an HTML page and a CSV from a "
                                                   "folder of results")
    p.add_argument("results", help="a folder of result JSONs (grade-all's output folder)")
    p.add_argument("-o", "--output", help="write class_report.html and .csv here (default: the results folder)")
    p.add_argument("--roster", help="a CSV with a student id column and section, ta (and name) columns")
    p.add_argument("--names", action="store_true", help="name students (ids, roster names) in the page")
    p.set_defaults(func=cmd_class_report)
