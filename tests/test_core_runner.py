"""The student's process: whatever it does costs that case only, and the grader reads only JSON."""
import io
import json
import os
import re
import textwrap

import pytest
import torch

from autograder.runtime import wire
from autograder.core.compare import NOT_IMPLEMENTED_VALUE

DRIVER = "tests.core_drivers:call"


def submit(tmp_path, source, name="student"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "mod.py").write_text(textwrap.dedent(source))
    return d


def run(runner, sub, time_limit=10.0, **kw):
    return runner.run(sub, "mod", DRIVER, {"args": kw.pop("args", {})}, time_limit=time_limit,
                      memory_mb=kw.pop("memory_mb", 2048), **kw)


def test_ok_result_and_captured_output(runner, tmp_path):
    sub = submit(tmp_path, """
        import torch
        def f():
            print("debug print")
            return torch.ones(2, 3) * 2
    """)
    r = run(runner, sub)
    assert r.status == "ok" and torch.equal(r.outputs["out"], torch.full((2, 3), 2.0))
    assert "debug print" in r.output


@pytest.mark.parametrize("body, status, words", [
    ("raise NotImplementedError()", "not_implemented", "NotImplementedError"),
    ("import sys; sys.exit(3)", "error", "sys.exit(3)"),
    ("import os; os._exit(0)", "error", "without returning a result"),
    ("return 1/0", "error", "ZeroDivisionError"),
    ("import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)", "error", ""),
])
def test_failures_are_named_in_one_line(runner, tmp_path, body, status, words):
    sub = submit(tmp_path, f"def f():\n    {body}\n")
    r = run(runner, sub)
    assert r.status == status
    if status != "not_implemented":
        assert words in r.message
    if "ZeroDivision" in words:
        assert r.where == "mod.py, line 2, in f"


def test_syntax_error_names_file_and_line(runner, tmp_path):
    sub = submit(tmp_path, "def f():\n    return (\n")
    r = run(runner, sub)
    assert r.status == "error" and "SyntaxError" in r.message and r.where.startswith("mod.py, line")


def test_infinite_loop_times_out_and_the_next_case_runs(runner, tmp_path):
    sub = submit(tmp_path, "def f():\n    while True:\n        pass\n")
    r = run(runner, sub, time_limit=1.0)
    assert r.status == "timeout" and "1 s" in r.message
    ok = submit(tmp_path, "def f():\n    return 1.5\n", name="ok")
    assert run(runner, ok).outputs == {"out": 1.5}


def test_the_student_code_can_signal_only_itself(runner, tmp_path):
    sub = submit(tmp_path, """
        import os, signal, time
        def f():
            refused = []
            for pid, sig in ((os.getppid(), signal.SIGKILL), (os.getppid(), signal.SIGSTOP), (-1, signal.SIGKILL),
                             (1, signal.SIGTERM)):
                try:
                    os.kill(pid, sig)
                except PermissionError:
                    refused.append(pid)
            signal.signal(signal.SIGUSR1, lambda *_: refused.append("self"))
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.1)
            return len(refused)
    """)
    assert run(runner, sub).outputs == {"out": 5}
    ok = submit(tmp_path, "def f():\n    return 2.5\n", name="ok")
    assert run(runner, ok).outputs == {"out": 2.5}


def _worker_processes(runner) -> int:
    """Processes running the worker's code under this runner (the server and anything forked from it)."""
    pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    parent = {}
    for pid in pids:
        try:
            parent[pid] = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    root, count = runner._proc.pid, 0
    for pid in parent:
        p, seen = pid, 0
        while p in parent and p != root and seen < 100:
            p, seen = parent[p], seen + 1
        if p == root:
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            count += b"python" in os.path.basename(argv[0]) and b"autograder.runtime.worker" in argv
    return count


def test_student_code_cannot_start_processes_and_leaves_none(runner, tmp_path):
    sub = submit(tmp_path, """
        import os, subprocess, threading
        def f():
            refused = 0
            for start in (os.fork, lambda: subprocess.Popen(["sleep", "60"]),
                          lambda: os.posix_spawn("/bin/sleep", ["sleep", "60"], {})):
                try:
                    if start() == 0:
                        os._exit(0)
                except OSError:
                    refused += 1
            t = threading.Thread(target=lambda: None)  # threads are fine
            t.start()
            t.join()
            return refused
    """)
    result = run(runner, sub)
    assert result.status == "ok" and result.outputs == {"out": 3}, result
    assert _worker_processes(runner) == 1  # the server alone
    assert run(runner, submit(tmp_path, "def f():\n    return 2.0\n", name="ok")).outputs == {"out": 2.0}


def test_student_code_cannot_write_to_the_grader_protocol(runner, tmp_path):
    sub = submit(tmp_path, """
        import os
        def f():
            closed = []
            for fd in range(3, 64):
                if fd == 3:
                    continue  # its own result pipe
                try:
                    os.write(fd, b"forged")
                except OSError:
                    closed.append(fd)
            return len(closed)
    """)
    assert run(runner, sub).outputs == {"out": 60}


def test_memory_limit(runner, tmp_path):
    sub = submit(tmp_path, "def f():\n    x = bytearray(3 * 1024**3)\n    return 1.0\n")
    r = run(runner, sub, memory_mb=1500)
    assert r.status == "error" and "memory" in r.message


def test_output_flood_is_capped(runner, tmp_path):
    sub = submit(tmp_path, "def f():\n    for i in range(200000):\n        print('spam' * 10)\n    return 1.0\n")
    r = run(runner, sub)
    assert r.status == "ok" and len(r.output) < 70 * 1024 and "[output truncated]" in r.output


def test_forged_reply_on_stdout_is_just_output(runner, tmp_path):
    sub = submit(tmp_path, """
        import sys, json, struct
        def f():
            body = json.dumps({"status": "ok", "outputs": {"out": 99}}).encode()
            sys.stdout.buffer.write(struct.pack("<Q", len(body)) + body) if hasattr(sys.stdout, "buffer") else None
            return 1.0
    """)
    assert run(runner, sub).outputs == {"out": 1.0}


def test_autograd_tripwire(runner, tmp_path):
    sub = submit(tmp_path, """
        import torch
        def f():
            x = torch.ones(3).requires_grad_()
            with torch.enable_grad():
                (x * 2).sum().backward()
            return x.grad
    """)
    r = runner.run(sub, "mod", DRIVER, {}, time_limit=10, memory_mb=2048, forbid_autograd=True)
    assert r.status == "error" and r.autograd_calls


def test_blocked_import(runner, tmp_path):
    sub = submit(tmp_path, "import torch\ndef f():\n    return 1.0\n")
    r = runner.run(sub, "mod", DRIVER, {}, time_limit=10, memory_mb=2048, blocked_imports=("torch",),
                   blocked_why="the scalar engine must not lean on torch")
    assert r.status == "error" and "import torch is not allowed" in r.message and r.where.startswith("mod.py, line 1")


def test_unsupported_return_values_are_marked_not_trusted(runner, tmp_path):
    sub = submit(tmp_path, "def f():\n    return lambda: 1\n")
    r = run(runner, sub)
    assert r.status == "ok" and isinstance(r.outputs["out"], wire.Unsupported)


def test_wire_rejects_tensors_whose_bytes_do_not_match_their_shape():
    good = wire.encode({"t": torch.arange(6.0).reshape(2, 3), "n": NOT_IMPLEMENTED_VALUE, "x": float("inf")})
    back = wire.decode(good)
    assert torch.equal(back["t"], torch.arange(6.0).reshape(2, 3)) and back["n"] is NOT_IMPLEMENTED_VALUE
    assert back["x"] == float("inf")
    bad = wire.encode(torch.zeros(2))
    bad["__tensor__"]["shape"] = [1000]
    with pytest.raises(ValueError):
        wire.decode(bad)
    bad["__tensor__"].update(shape=[2], dtype="object")
    with pytest.raises(ValueError):
        wire.decode(bad)
    buf = io.BytesIO()
    wire.send(buf, {"a": 1})
    assert wire.recv(io.BytesIO(buf.getvalue())) == {"a": 1}
    with pytest.raises(ValueError):
        wire.recv(io.BytesIO(buf.getvalue()[:-1]))


def test_wire_frames_carry_tensors_raw_and_are_validated():
    """A tensor's bytes travel raw after the JSON (no base64): every dtype comes back equal. A frame from the
    untrusted side whose layout is wrong (a buffer longer than the frame, bytes left over, a tensor naming a
    buffer the frame does not have, a buffer where JSON is expected) is refused with a ValueError."""
    import struct
    values = {"f32": torch.randn(3, 4), "f64": torch.randn(5, dtype=torch.float64),
              "bf16": torch.ones(2, dtype=torch.bfloat16), "i64": torch.arange(7), "b": torch.tensor([True, False]),
              "empty": torch.zeros(0, 3),
              "steps": [{"W": torch.randn(2, 2), "loss": 1.5} for _ in range(3)]}
    data = wire.frame({"outputs": wire.encode(values)})
    back = wire.decode(wire.unframe(data)["outputs"])
    for name in ("f32", "f64", "bf16", "i64", "b", "empty"):
        assert back[name].dtype == values[name].dtype and torch.equal(back[name], values[name]), name
    assert all(torch.equal(a["W"], b["W"]) for a, b in zip(back["steps"], values["steps"]))
    raw = values["f64"].numpy().tobytes()
    assert raw in data and wire.frame({"x": 1}).endswith(b'{"x": 1}')  # raw bytes; a message without tensors: JSON

    def framed(body: bytes, *buffers: bytes, extra: bytes = b"") -> bytes:
        payload = struct.pack("<Q", len(body)) + body + b"".join(struct.pack("<Q", len(b)) + b for b in buffers)
        return struct.pack("<Q", len(payload + extra)) + payload + extra

    tensor = b'{"outputs": {"__tensor__": {"dtype": "float64", "shape": [1], "data": %d}}}'
    assert wire.decode(wire.unframe(framed(tensor % 0, struct.pack("<d", 2.5)))["outputs"]).item() == 2.5
    for bad in (framed(tensor % 1, struct.pack("<d", 2.5)),                      # no buffer 1
                framed(tensor % 0, struct.pack("<d", 2.5), extra=b"\x01"),       # bytes left over
                framed(tensor % 0, struct.pack("<d", 2.5), b"\0" * 8),            # a buffer no tensor uses
                framed(tensor % 0, struct.pack("<d", 2.5))[:-3],                 # cut short
                framed(tensor % 0, struct.pack("<f", 2.5)),                      # 4 bytes for one float64
                struct.pack("<Q", 16) + struct.pack("<Q", 1 << 40) + b"{}" + b"\0" * 6):  # JSON size past the end
        with pytest.raises(ValueError):
            wire.decode(wire.unframe(bad)["outputs"])
    # A buffer is only a tensor's data: anywhere else (a bare header, a value of its own) it is refused.
    stray = framed(b'{"outputs": {"__list__": [{"dtype": "float64", "shape": [1], "data": 0}]}}', b"\0" * 8)
    with pytest.raises(ValueError):
        wire.decode(wire.unframe(stray)["outputs"])


def test_cases_share_one_process_but_a_fatal_case_costs_only_itself(runner, tmp_path):
    sub = submit(tmp_path, """
        import os, random, time
        def f(mode):
            print("case", mode)
            if mode == "hang":
                while True:
                    pass
            if mode == "die":
                os._exit(3)
            if mode == "raise":
                raise ValueError("only this case")
            return random.random()  # the random state is reset for every case
    """)
    modes = ["ok", "die", "ok", "raise", "ok"]
    results = runner.run_cases(sub, "mod", DRIVER, [{"args": {"mode": m}} for m in modes], time_limit=1.0,
                               memory_mb=2048)
    assert [r.status for r in results] == ["ok", "error", "ok", "error", "ok"]
    assert "without returning a result" in results[1].message and "only this case" in results[3].message
    values = {r.outputs["out"] for r in results if r.status == "ok"}
    assert len(values) == 1  # same random draw in every case, in the first child and after restarts
    assert [r.output.strip() for r in results] == [f"case {m}" for m in modes]


def test_a_timeout_stops_its_group_without_waiting_again(runner, tmp_path):
    """The case after a timeout would most likely wait out its limit too: the rest of the group is not run,
    each with the same timeout verdict, and the whole group costs one limit, not one per case."""
    sub = submit(tmp_path, """
        def f(mode):
            print("case", mode)
            while mode == "hang":
                pass
            return 1.0
    """)
    modes = ["ok", "hang", "hang", "ok", "hang"]
    results = runner.run_cases(sub, "mod", DRIVER, [{"args": {"mode": m}} for m in modes], time_limit=1.5,
                               memory_mb=2048)
    assert [r.status for r in results] == ["ok", "timeout", "timeout", "timeout", "timeout"]
    assert results[1].message == "did not finish within 1.5 s"
    assert all(r.message.startswith("not run: an earlier case timed out") for r in results[2:])
    assert results[0].output.strip() == "case ok" and not results[2].output


# -- the trust boundary ---------------------------------------------------------------------------------

# the runtime package is in the child (the worker is its module); nothing else of the grader
RUNTIME_MODULES = {"autograder", "autograder.runtime", "autograder.runtime.wire", "autograder.runtime.verdicts",
                   "autograder.runtime.guard", "autograder.runtime.seccomp"}


def test_the_students_process_holds_nothing_of_the_grader(runner, tmp_path):
    sub = submit(tmp_path, """
        import importlib, sys
        def f():
            held = sorted(m for m in sys.modules if m.startswith(("autograder", "tests", "reference")))
            imported = []
            for name in ("autograder.assignments", "autograder.core.compare", "autograder.core.pipeline", "autograder.core.exercise",
                         "autograder.sandbox.client", "tests.core_drivers", "reference"):
                try:
                    importlib.import_module(name)
                    imported.append(name)
                except ImportError:
                    pass
            return {"held": held, "imported": imported}
    """)
    out = runner.run(sub, "mod", "tests.core_drivers:call_dict", {}, time_limit=10, memory_mb=2048).outputs
    # Of the grader, only its runtime (autograder/runtime/, staged under the same name).
    assert all(m in ("autograder", "autograder.runtime") or m.startswith("autograder.runtime.") for m in out["held"]), out["held"]
    assert RUNTIME_MODULES <= set(out["held"]) and out["imported"] == []


def test_a_stopped_server_costs_a_restart_not_a_hang(tmp_path):
    """A fork server that stops answering (SIGSTOP; the student's code cannot send it, but a grader must not
    rely on that): the next wait on it times out, it is killed and a new one grades the next case."""
    import signal
    from autograder.sandbox import Runner
    ok = submit(tmp_path, "def f():\n    return 2.0\n", name="ok")
    with Runner("none") as r:
        assert run(r, ok).outputs == {"out": 2.0}
        first = r._proc
        os.kill(first.pid, signal.SIGSTOP)  # without a sandbox, the Popen is the server itself
        assert run(r, ok).outputs == {"out": 2.0}
        assert r._proc is not first and first.poll() is not None  # the stopped one is gone


def test_public_and_hidden_cases_never_share_a_process(runner, tmp_path):
    from autograder.core.compare import compare
    from autograder.core.exercise import Case, Exercise, Seeds
    from autograder.core.pipeline import grade
    seen = []

    def judge(case, outputs, truth):
        seen.append((case.hidden, outputs["out"]))
        return [compare("out", torch.tensor(1.0), torch.tensor(1.0))]

    cases = lambda seeds: [Case(f"c{i}", i % 2 == 1, {"args": {}}) for i in range(4)]  # noqa: E731
    ex = Exercise(id="toy.pids", module="mod", entry="f", points=1, cases=cases, driver=DRIVER,
                  truth=lambda case: {"out": torch.tensor(1.0)}, judge=judge)
    grade(submit(tmp_path, "import os\ndef f():\n    return os.getpid()\n"), [ex], hidden=True, runner=runner,
          seeds=Seeds(hidden=True, secret="x"))
    public = {pid for hidden, pid in seen if not hidden}
    hidden = {pid for hidden, pid in seen if hidden}
    assert len(seen) == 4 and public and hidden and not public & hidden


def test_a_judge_that_raises_costs_that_exercise_only(runner, tmp_path):
    from autograder.core.exercise import Case, Exercise, Seeds
    from autograder.core.pipeline import JUDGE_FAILED, grade

    def judge(case, outputs, truth):
        raise KeyError("the judge trips on an odd answer")

    cases = lambda seeds: [Case("public-0", False, {"args": {}})]  # noqa: E731
    fragile = Exercise(id="toy.fragile", module="mod", entry="f", points=1, cases=cases, driver=DRIVER,
                       truth=lambda case: {"out": torch.tensor(1.0)}, judge=judge)
    sturdy = Exercise(id="toy.sturdy", module="mod", entry="f", points=1, cases=cases, driver=DRIVER,
                      truth=lambda case: {"out": torch.tensor(1.0)})
    result = grade(submit(tmp_path, "import torch\ndef f():\n    return torch.tensor(1.0)\n"), [fragile, sturdy],
                   hidden=False, runner=runner, seeds=Seeds(hidden=False))
    broken, fine = result.exercises
    assert broken.score == 0 and broken.checks[0].verdict == "error" and JUDGE_FAILED in broken.checks[0].message
    assert fine.score == 1


def test_hidden_failures_show_only_their_kind(runner, tmp_path):
    from autograder.core.exercise import Case, Exercise, Seeds
    from autograder.core.pipeline import grade
    secret_value = 0.7391827364
    cases = lambda seeds: [Case("hidden-0", True, {"args": {"x": secret_value}})]  # noqa: E731
    for body in ("raise ValueError(repr(x))", "import sys; sys.exit(repr(x))",
                 "raise type('E' + repr(x).replace('.', '_'), (Exception,), {})()",
                 "exec(compile('\\n' * int(x * 1000) + 'raise ValueError()', 'mod.py', 'exec'))"):
        ex = Exercise(id="toy.h", module="mod", entry="f", points=1, cases=cases, driver=DRIVER,
                      truth=lambda case: {"out": torch.tensor(1.0)})
        sub = submit(tmp_path, f"def f(x):\n    {body}\n", name=f"s{abs(hash(body))}")
        result = grade(sub, [ex], hidden=True, runner=runner, seeds=Seeds(hidden=True, secret="x"))
        text = json.dumps(result.to_dict())
        assert "7391827" not in text and "7_391827" not in text and not re.search(r"line 7[34]\d", text), text
        assert "withheld" in result.exercises[0].checks[0].message


def test_replies_are_validated_and_plain():
    from autograder.sandbox.replies import _to_result, plain
    assert plain("\x1b[2J\x1b[31mred\x1b[0m \x1b]0;title\x07ok\r\x9b2J") == "red ok"
    deep = {"__list__": [1]}
    for _ in range(100):
        deep = {"__list__": [deep]}
    for outputs in (deep, {"__tensor__": {"dtype": "float32", "shape": [1 << 40], "data": ""}},
                    {"__pickle__": "x"}, {"__float__": "__import__('os')"}, [1, 2]):
        r = _to_result({"status": "ok", "outputs": outputs}, "")
        assert r.status == "error" and r.kind == "malformed", outputs
    r = _to_result({"status": "ok", "outputs": {"__dict__": [["msg", "\x1b[32mTotal: 87/87"]]}, "kind": "x"}, "")
    assert r.status == "ok" and r.outputs == {"msg": "Total: 87/87"}
    assert _to_result({"status": "error", "kind": "\x1b[2Jforged", "message": "\x1b[2Jm"}, "").kind == "exception"
    assert _to_result({"status": "great"}, "").kind == "malformed"


def test_no_network_even_without_a_sandbox(tmp_path):
    """The seccomp filter refuses every socket but AF_UNIX ones, whatever the mechanism (the dedicated-user
    one has no network namespace): a hidden case's inputs cannot be sent home."""
    from autograder.sandbox import Runner
    sub = submit(tmp_path, """
        import socket
        def f():
            refused = []
            for family in (socket.AF_INET, socket.AF_INET6):
                try:
                    socket.socket(family, socket.SOCK_DGRAM).close()
                except PermissionError:
                    refused.append(family.name)
            socket.socketpair()  # local pairs are harmless
            return len(refused)
    """)
    with Runner("none") as r:
        assert run(r, sub).outputs == {"out": 2}


def test_a_timeout_says_where_the_students_code_was(runner, tmp_path):
    """Just before the deadline the child prints its stack (faulthandler): the timeout names the student's
    innermost line, and the dump itself is not shown as the student's output."""
    sub = submit(tmp_path, "def spin():\n    x = 0\n    while True:\n        x += 1\n\n\ndef f():\n    return spin()\n")
    r = run(runner, sub, time_limit=2.0)
    assert r.status == "timeout"
    assert re.fullmatch(r"mod\.py, line [34], in spin", r.where), r.where
    assert "Timeout (" not in r.output and 'File "' not in r.output


def test_a_crash_names_the_signal_and_the_last_line(runner, tmp_path):
    """A fatal signal: faulthandler prints the stack before the process dies, and the runner names the line."""
    sub = submit(tmp_path, "import os\nimport signal\n\n\ndef f():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    r = run(runner, sub)
    assert r.status == "error" and "segmentation fault" in r.message, r.message
    assert r.where == "mod.py, line 6, in f", r.where
    assert "Fatal Python error" not in r.output


def test_every_child_has_the_same_limits_environment_and_layout_whatever_its_group(runner, tmp_path):
    """A child cannot tell a hidden case from a public one by what it is given: the group's size (hidden and
    public groups differ) changes none of its limits, its environment or where it runs; its CPU allowance is
    per case (the soft limit is the CPU used so far plus one case's allowance, under one fixed cap)."""
    sub = submit(tmp_path, """
        import os, resource, sys
        def f():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            used = usage.ru_utime + usage.ru_stime
            limits = {n: list(resource.getrlimit(getattr(resource, n))) for n in dir(resource) if n.startswith("RLIMIT_")}
            cpu_soft = limits.pop("RLIMIT_CPU")[0]
            here = os.getcwd()
            return {"limits": limits, "cpu_hard": resource.getrlimit(resource.RLIMIT_CPU)[1],
                    "cpu_allowance": round(cpu_soft - used), "env": sorted(os.environ),
                    "home": os.environ.get("HOME") == here, "parent": os.path.dirname(here),
                    "argv": sys.argv, "recursion": sys.getrecursionlimit()}
    """)
    one = runner.run_cases(sub, "mod", DRIVER, [{}], time_limit=10.0, memory_mb=2048)
    five = runner.run_cases(sub, "mod", DRIVER, [{}] * 5, time_limit=10.0, memory_mb=2048)
    assert [r.status for r in one + five] == ["ok"] * 6
    first = one[0].outputs["out"]
    for r in five:
        assert r.outputs["out"] == first
    assert abs(first["cpu_allowance"] - 12) <= 1  # 10 s per case + 2


def test_after_a_timeout_the_same_files_later_groups_get_a_shorter_limit(tmp_path):
    """A helper that hangs costs one full wait per submission, not one per exercise calling it; another
    submission gets its own full limits again."""
    from autograder.sandbox.client import SHORTENED_LIMIT_MIN, Runner
    hang = submit(tmp_path, "def f():\n    while True:\n        pass\n", name="hang")
    limit = SHORTENED_LIMIT_MIN + 1
    with Runner() as r:
        first = run(r, hang, time_limit=limit)
        assert first.status == "timeout" and first.message == f"did not finish within {limit:g} s"
        second = run(r, hang, time_limit=4 * limit)
        assert second.status == "timeout"
        assert second.message == f"did not finish within {limit:g} s (shortened: an earlier exercise of this " \
                                 "file timed out)"
        other = submit(tmp_path, "def f():\n    return 1.0\n", name="other")
        assert run(r, other).outputs == {"out": 1.0}
        assert r._timed_out == set()


def test_a_child_that_dirties_the_sandbox_costs_a_new_server_and_nothing_else(runner, tmp_path):
    """Everything a child leaves (files in its scratch's parent, a directory it made unremovable, the
    scratch's parent's mode) is wiped and verified; what cannot be verified clean means a new server, and
    the next child starts in a state no earlier one touched."""
    sub = submit(tmp_path, """
        import os
        def f(mode):
            here = os.getcwd()
            parent = os.path.dirname(here)
            if mode == "dirty":
                os.makedirs(os.path.join(parent, "left", "deep"))
                with open(os.path.join(parent, "left", "deep", "inputs.txt"), "w") as fh:
                    fh.write("hidden")
                os.chmod(os.path.join(parent, "left"), 0)
                try:
                    os.chmod(parent, 0o555)
                except OSError:
                    pass
                return 0.0
            if mode == "deep":  # deeper than the server wipes: it cannot be verified clean
                path = os.path.join(parent, "deep")
                for _ in range(300):
                    os.mkdir(path)
                    path = os.path.join(path, "d")
                return 0.0
            return sorted(n for n in os.listdir(parent) if os.path.join(parent, n) != here)
    """)
    # What a fresh child sees there: nothing, or, where the checkout lives under /tmp, the mount points bubblewrap
    # made for its runtime (the server's baseline).
    fresh = run(runner, sub, args={"mode": "look"})
    assert fresh.status == "ok" and not {"left", "deep"} & set(fresh.outputs["out"])
    assert run(runner, sub, args={"mode": "dirty"}).outputs == {"out": 0.0}
    after = run(runner, sub, args={"mode": "look"})
    assert after.status == "ok" and after.outputs["out"] == fresh.outputs["out"]
    restarts = runner.restarts
    assert run(runner, sub, args={"mode": "deep"}).outputs == {"out": 0.0}
    assert runner.restarts == restarts + 1
    after = run(runner, sub, args={"mode": "look"})
    assert after.status == "ok" and after.outputs["out"] == fresh.outputs["out"]


def test_a_case_that_finishes_just_in_time_shows_only_what_it_printed(runner, tmp_path):
    """Shortly before the deadline faulthandler prints the stack (so a timeout can name the student's line);
    a case that then finishes in time did not print that stack: it is not shown as the student's output."""
    sub = submit(tmp_path, """
        import time
        def f():
            print("before")
            time.sleep(9.3)
            print("after")
            return 1.0
    """)
    r = run(runner, sub, time_limit=10.0)
    assert r.status == "ok" and r.output.strip().splitlines() == ["before", "after"]
