"""The pipeline on a toy exercise: scoring, aggregation over cases, hidden-case redaction, local credit."""
import textwrap

import torch

from autograder.core.compare import compare
from autograder.core.exercise import Case, Exercise, Mistake, Seeds
from autograder.core.pipeline import grade


def cases(seeds):
    out = []
    for i in seeds.public(1) + seeds.hidden_seeds("toy.f", 2):
        g = torch.Generator().manual_seed(i)
        hidden = i >= 1_000_000
        out.append(Case(f"{'hidden' if hidden else 'public'}-{len(out)}", hidden,
                        {"args": {"x": torch.randn(3, 4, generator=g, dtype=torch.float64)}},
                        label="float64, 3x4"))
    return out


def truth(case):
    x = case.inputs["args"]["x"]
    return {"double": 2 * x, "colsum": x.sum(0, keepdim=True)}


def judge_with_local(case, outputs, truth):
    """`colsum` is locally right when it equals the column sum of the student's own `double` / 2."""
    results = [compare(name, outputs.get(name), t) for name, t in truth.items()]
    d = outputs.get("double")
    if isinstance(d, torch.Tensor) and d.shape == truth["double"].shape:
        results[1].local_verdict = compare("colsum", outputs.get("colsum"), (d / 2).sum(0, keepdim=True)).verdict
    return results


TOY = Exercise(id="toy.f", module="mod", entry="f", points=4, cases=cases, driver="tests.core_drivers:call_dict",
               truth=truth, mistakes=(Mistake("triple", "used 3 instead of 2",
                                              lambda got, exp, **_: torch.allclose(got, exp * 1.5), ("double",)),))


def submit(tmp_path, body):
    (tmp_path / "mod.py").write_text(textwrap.dedent(body))
    return tmp_path


def test_right_answer_full_marks(runner, tmp_path):
    sub = submit(tmp_path, """
        def f(x):
            return {"double": x + x, "colsum": x.sum(0, keepdim=True)}
    """)
    r = grade(sub, [TOY], hidden=True, runner=runner)
    assert r.score == r.max_score == 4
    assert [c.name for c in r.exercises[0].checks] == ["double", "colsum"]
    assert all(len(c.cases) == 3 for c in r.exercises[0].checks)


def test_catalogued_mistake_named_and_other_check_still_scores(runner, tmp_path):
    sub = submit(tmp_path, """
        def f(x):
            return {"double": 3 * x, "colsum": x.sum(0, keepdim=True)}
    """)
    ex = grade(sub, [TOY], hidden=True, runner=runner).exercises[0]
    double, colsum = ex.checks
    assert double.verdict == "wrong" and double.mistake == "triple" and double.points == 0
    assert colsum.points == 2 and ex.score == 2 and ex.first_wrong_step == "double"


def test_hard_coded_public_answer_fails_hidden_cases(runner, tmp_path):
    x = cases(Seeds(hidden=False))[0].inputs["args"]["x"]
    sub = submit(tmp_path, f"""
        import torch
        X = torch.tensor({x.tolist()!r}, dtype=torch.float64)
        def f(x):
            return {{"double": 2 * X, "colsum": X.sum(0, keepdim=True)}}
    """)
    public = grade(sub, [TOY], hidden=False, runner=runner)
    assert public.score == 4
    hidden = grade(sub, [TOY], hidden=True, runner=runner)
    check = hidden.exercises[0].checks[0]
    assert check.verdict == "wrong" and check.message.startswith("hidden case (float64, 3x4)")
    assert 0 < hidden.score < 4  # credit for the public case only


def test_hidden_cases_leak_neither_output_nor_exception_text(runner, tmp_path):
    sub = submit(tmp_path, """
        def f(x):
            print("INPUT", x.tolist())
            if x.sum() > 100 or x[0, 0] != x[0, 0] or True:
                raise ValueError("the input was " + repr(x.tolist()))
    """)
    r = grade(sub, [TOY], hidden=True, runner=runner)
    ex = r.exercises[0]
    hidden_x = [c.inputs["args"]["x"] for c in cases(Seeds.from_env(True)) if c.hidden]
    text = repr(r.to_dict())
    for x in hidden_x:
        assert repr(x.tolist())[:20] not in text
    assert "INPUT" in ex.output  # the public case's print is shown
    assert ex.checks[0].verdict == "error" and "ValueError" in ex.checks[0].message


def test_a_hidden_case_never_shows_the_line_it_failed_at(runner, tmp_path):
    """The line a hidden case stopped at is the student's choice (it could encode the inputs): only a public
    case's line is shown as where the code stopped."""
    public_x00 = cases(Seeds(hidden=False))[0].inputs["args"]["x"][0, 0].item()
    sub = submit(tmp_path, f"""
        def f(x):
            if x[0, 0].item() != {public_x00!r}:  # every case but the public one
                raise ValueError("hidden")
            return {{"double": 2 * x, "colsum": x.sum(0, keepdim=True)}}
    """)
    ex = grade(sub, [TOY], hidden=True, runner=runner).exercises[0]
    assert [c.verdict for c in ex.checks[0].cases] == ["exact", "error", "error"]
    assert ex.where == "" and "line" not in repr(ex.to_dict())


def test_correct_step_on_wrong_upstream_earns_its_points(runner, tmp_path):
    sub = submit(tmp_path, """
        def f(x):
            d = 3 * x
            return {"double": d, "colsum": (d / 2).sum(0, keepdim=True)}
    """)
    toy = Exercise(**{**TOY.__dict__, "judge": judge_with_local})
    ex = grade(sub, [toy], hidden=False, runner=runner).exercises[0]
    double, colsum = ex.checks
    assert colsum.verdict == "wrong" and colsum.local_verdict in ("exact", "approx") and colsum.points == 2
    assert (colsum.status, colsum.passed, colsum.correct) == ("passed_locally", True, False)
    assert (double.status, double.passed) == ("failed", False)
    assert ex.first_wrong_step == "double"


def test_missing_file_is_an_error_for_that_exercise(runner, tmp_path):
    r = grade(tmp_path, [TOY], hidden=False, runner=runner)
    assert (r.score, r.max_score, r.exercises[0].max_score) == (0, 4, 4)  # 0/4, not 0/0
    assert r.score == 0 and all(c.verdict == "error" and "missing file mod.py" in c.message
                                for c in r.exercises[0].checks)


def test_the_next_exercise_runs_while_the_last_one_is_judged(runner, tmp_path):
    """Each exercise's cases run in the sandbox while this process judges the exercise before it: the first
    exercise's judge waits (up to a minute) for the second exercise's run to finish, which happens only if that
    run proceeds meanwhile. Results and callbacks keep the exercises' order, and a front end's callback that
    fails stops the grading without leaving the runner busy."""
    import dataclasses
    import threading

    import pytest
    runs_done = []
    second_run_done = threading.Event()

    class Recording:
        """The fixture's runner, noting each group of cases it finishes."""
        def __getattr__(self, name):
            return getattr(runner, name)

        def run_cases(self, *args, **kwargs):
            got = runner.run_cases(*args, **kwargs)
            runs_done.append(got)
            if len(runs_done) == 2:
                second_run_done.set()
            return got
    seen_during_judge = []

    def first_judge(case, outputs, truth):
        seen_during_judge.append(second_run_done.wait(timeout=60))
        return [compare(n, outputs.get(n), t) for n, t in truth.items()]

    first = dataclasses.replace(TOY, id="toy.first", judge=first_judge)
    second = dataclasses.replace(TOY, id="toy.second")
    sub = submit(tmp_path, """
        def f(x):
            return {"double": x + x, "colsum": x.sum(0, keepdim=True)}
    """)
    seen = []
    r = grade(sub, [first, second], hidden=False, runner=Recording(), on_exercise=lambda e: seen.append(e.id))
    assert seen_during_judge == [True]  # toy.second's cases had run while toy.first was being judged
    assert [e.id for e in r.exercises] == seen == ["toy.first", "toy.second"]
    assert r.score == r.max_score == 8

    def fails(result):
        raise RuntimeError("a renderer failed")
    with pytest.raises(RuntimeError, match="a renderer failed"):
        grade(sub, [TOY, second], hidden=False, runner=runner, on_exercise=fails)
    assert grade(sub, [TOY], hidden=False, runner=runner).score == 4  # the runner is free again
