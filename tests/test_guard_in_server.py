"""The autograd guard is installed once in the fork server and only switched per child (guard.install, arm,
disarm): every child that forbids autograd gets it whole and armed, one that allows autograd gets none of it,
whatever ran before on the same server, and the switch that would take it off is out of the student's reach
once armed. The random state every case starts from is the same for torch's generator too."""
from __future__ import annotations

import textwrap

DRIVER = "tests.core_drivers:call"
LIMITS = dict(time_limit=20, memory_mb=2048)

PROBE = """
    import torch

    def f():
        return {"grad_mode": torch.is_grad_enabled(), "backward": torch.Tensor.backward.__name__,
                "grad": torch.autograd.grad.__name__}
"""


def submit(tmp_path, source, name="student"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "mod.py").write_text(textwrap.dedent(source))
    return d


def test_each_child_gets_the_guard_its_exercise_asks_for(runner, tmp_path):
    sub = submit(tmp_path, PROBE)
    for forbid in (True, False, True, False):
        run = runner.run(sub, "mod", DRIVER, {}, forbid_autograd=forbid, **LIMITS)
        assert run.status == "ok" and not run.autograd_calls, (forbid, run)
        if forbid:
            assert run.outputs["out"] == {"grad_mode": False, "backward": "autograd_tripwire",
                                          "grad": "autograd_tripwire"}
        else:
            assert run.outputs["out"] == {"grad_mode": True, "backward": "backward", "grad": "grad"}


def test_the_audit_hook_is_armed_in_a_guarded_child_only(runner, tmp_path):
    """The server and the child's own set-up use native code; the student's code in a guarded child may not."""
    sub = submit(tmp_path, """
        import ctypes

        def f():
            ctypes.CDLL(None).getpid()
            return 1
    """)
    guarded = runner.run(sub, "mod", DRIVER, {}, forbid_autograd=True, **LIMITS)
    assert guarded.status == "error" and any("native code" in c for c in guarded.autograd_calls), guarded
    allowed = runner.run(sub, "mod", DRIVER, {}, forbid_autograd=False, **LIMITS)
    assert allowed.status == "ok" and not allowed.autograd_calls, allowed


def test_the_switches_are_gone_once_the_guard_is_armed(runner, tmp_path):
    """`disarm` (and `install`, `arm`) called by the student's code change nothing: the undo switch left the
    process's reach when the guard was armed, and autograd is still caught."""
    sub = submit(tmp_path, """
        import sys
        import torch

        def f():
            guard = sys.modules["autograder.runtime." + "guard"]
            left = sorted(guard._state)
            guard.disarm()
            guard.install()
            guard.arm()
            x = torch.ones(3).requires_grad_()
            try:
                with torch.enable_grad():
                    (x * 2).sum().backward()
            except BaseException:
                pass
            return {"left": left, "grad_mode": torch.is_grad_enabled(), "grad": x.grad}
    """)
    run = runner.run(sub, "mod", DRIVER, {}, forbid_autograd=True, **LIMITS)
    assert run.autograd_calls, run
    assert run.status == "ok" and run.outputs["out"]["left"] == ["check"], run
    assert run.outputs["out"]["grad"] is None


def test_every_case_starts_from_the_same_torch_random_state(runner, tmp_path):
    sub = submit(tmp_path, """
        import torch

        def f(draw_more):
            first = torch.rand(3).tolist()
            if draw_more:  # the next case must not see where this one left the generator
                torch.rand(1000)
            return first
    """)
    runs = runner.run_cases(sub, "mod", DRIVER, [{"args": {"draw_more": m}} for m in (True, False, True)],
                            forbid_autograd=True, **LIMITS)
    assert all(r.status == "ok" for r in runs), runs
    assert len({tuple(r.outputs["out"]) for r in runs}) == 1


def test_bytecode_compiled_by_the_grader_keeps_lines_and_syntax_errors(runner, tmp_path):
    """The staged copy carries bytecode compiled once by the grader: tracebacks still name the student's file
    and line, and a file that does not compile still fails with its SyntaxError."""
    sub = submit(tmp_path, """
        def f():
            x = 1
            raise ValueError("line four")
    """)
    run = runner.run(sub, "mod", DRIVER, {}, forbid_autograd=True, **LIMITS)
    assert run.status == "error" and run.where == "mod.py, line 4, in f", run
    broken = submit(tmp_path, "def f(:\n    return 1\n", name="broken")
    run = runner.run(broken, "mod", DRIVER, {}, forbid_autograd=True, **LIMITS)
    assert run.status == "error" and "SyntaxError" in run.message and run.where.startswith("mod.py, line 1"), run
