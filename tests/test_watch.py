"""`autograder watch`: what an edit touches (the AST fingerprints and the call graph), and the loop driven
as a student drives it: the command running in a real terminal (a pty), a file saved, the table of the
exercise it touches printed, Ctrl-C."""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.frontends import watch
from autograder.assignments import exercises

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r")


# -- what an edit touches ------------------------------------------------------------------------------

def _ninja(tmp_path: Path) -> Path:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "backprop_ninja.py").write_text((ROOT / "reference" / "backprop_ninja.py").read_text())
    return sub


def _touched(sub: Path, edit) -> list[str]:
    path = sub / "backprop_ninja.py"
    before = watch.scan(sub)
    path.write_text(edit(path.read_text()))
    after = watch.scan(sub)
    changed = watch.changed_names(before, after)
    return [ex.id.split(".")[1] for ex in watch.affected(exercises("backprop_ninja"), changed, after, sub)]


def test_one_function_regrades_it_and_what_calls_it(tmp_path):
    sub = _ninja(tmp_path)
    # tanh_backward is a helper of forward_backward, which train calls
    assert _touched(sub, lambda s: s.replace("    dhpreact = (1.0 - h**2) * dh\n    ### END SOLUTION\n    return",
                                             "    dhpreact = (1.0 - h) * dh\n    ### END SOLUTION\n    return")) == \
        ["tanh_backward", "forward_backward", "train"]
    # manual_backward is called by nothing else
    assert _touched(sub, lambda s: s.replace("dh = dlogits @ W2.T", "dh = dlogits @ W2.T * 2", 1)) == ["manual_backward"]


def test_comments_layout_and_the_main_block_regrade_nothing(tmp_path):
    sub = _ninja(tmp_path)
    assert _touched(sub, lambda s: s.replace("    dh = dlogits @ W2.T", "    # my note\n    dh = dlogits  @  W2.T", 1)) == []
    assert _touched(sub, lambda s: s + "\nif __name__ == '__main__':\n    print('hi')\n") == []


def test_module_level_and_syntax_errors_regrade_every_exercise_of_the_file(tmp_path):
    sub = _ninja(tmp_path)
    every = [ex.id.split(".")[1] for ex in exercises("backprop_ninja")]
    assert _touched(sub, lambda s: s.replace("import torch\n", "import torch\nimport math\n", 1)) == every
    assert _touched(sub, lambda s: s.replace("def tanh_backward(", "def tanh_backward((", 1)) == every


def test_a_helper_called_through_a_new_function_is_followed(tmp_path):
    """The call graph is the source's: a new helper that manual_backward starts calling regrades it, and
    an edit of that helper afterwards regrades it too."""
    sub = _ninja(tmp_path)
    touched = _touched(sub, lambda s: s.replace("dh = dlogits @ W2.T", "dh = my_matmul(dlogits, W2.T)", 1)
                       + "\n\ndef my_matmul(a, b):\n    return a @ b\n")
    assert touched == ["manual_backward"]
    assert _touched(sub, lambda s: s.replace("    return a @ b\n", "    return (a @ b) * 1.0\n")) == ["manual_backward"]


# -- the loop in a real terminal ----------------------------------------------------------------------------

class Terminal:
    """A command in a pseudo-terminal, read as a person reads the screen (escape codes stripped)."""

    def __init__(self, argv, cwd, columns=110):
        import fcntl
        import struct
        import termios
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
        env.pop("NO_COLOR", None)
        def controlling_terminal():  # a session of its own, whose terminal is the pty: Ctrl-C reaches it
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=controlling_terminal)
        os.close(slave)
        self.text = ""

    def read_until(self, pattern: str, timeout: float, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text[start:]):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not self._pending():
                raise AssertionError(f"{pattern!r} not seen in {timeout} s; the screen so far:\n{self.text[-3000:]}")
            self._read(min(left, 0.5))
        return self.text[start:]

    def _pending(self) -> bool:
        return bool(select.select([self.master], [], [], 0)[0])

    def _read(self, timeout: float) -> None:
        if select.select([self.master], [], [], timeout)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self.text += ANSI.sub("", chunk.decode("utf-8", "replace"))

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")   # the terminal turns it into SIGINT for the foreground process

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)


def test_watch_in_a_terminal_regrades_the_saved_function(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    source = (ROOT / "reference" / "graphs.py").read_text()
    (sub / "graphs.py").write_text(source)
    term = Terminal([sys.executable, "-m", "autograder", "watch", str(sub), "-a", "graphs", "--interval", "0.1"],
                    cwd=tmp_path)
    try:
        first = term.read_until(r"watching .* for changes", timeout=300)
        assert "graphs.AddGate" in first and "graphs.l2_of_matvec" in first and "Total: 12/12" in first
        mark = len(term.text)
        time.sleep(0.05)
        broken = source.replace("        dx = self.y * dout", "        dx = -self.y * dout", 1)
        assert broken != source
        (sub / "graphs.py").write_text(broken)       # the student saves
        saved = time.monotonic()
        after = term.read_until(r"since the last run.*\n(.|\n)*watching .* for changes", timeout=120, start=mark)
        took = time.monotonic() - saved
        assert "changed: MultiplyGate — regrading graphs.MultiplyGate" in after
        assert "graphs.MultiplyGate" in after and "graphs.AddGate " not in after and "graphs.l2_of_matvec" not in after
        assert re.search(r"dx\s+wrong", after) and "[sign]" in after
        assert "since the last run: fixed: nothing; newly wrong: MultiplyGate dx" in after
        assert "Total: 11.5/12" in after  # the total over every exercise, the others from the first run
        # a save that changes no code: said, nothing graded
        mark = len(term.text)
        (sub / "graphs.py").write_text(broken.replace("class MultiplyGate:", "class MultiplyGate:  # mine", 1))
        quiet = term.read_until(r"no code changed", timeout=60, start=mark)
        assert "regrading" not in quiet
        term.ctrl_c()
        term.read_until(r"stopped watching", timeout=30)
        assert term.proc.wait(30) == 0
        print(f"save to table: {took:.2f} s")
    finally:
        term.close()


@pytest.mark.skipif(not Path("/usr/bin/make").exists(), reason="no make")
def test_make_watch_passes_the_submission_and_assignment():
    out = subprocess.run(["make", "-n", "watch", "SUBMISSION=elsewhere", "A=graphs"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "autograder watch elsewhere -a graphs" in out.stdout


def test_across_files_micrograd(tmp_path):
    """nn.py uses engine.py's Value: an edit of Value regrades every micrograd exercise, one of MLP only nn."""
    sub = tmp_path / "sub"
    shutil.copytree(ROOT / "reference" / "micrograd", sub / "micrograd", ignore=shutil.ignore_patterns("__pycache__"))
    exs = exercises("micrograd")

    def touched(path, old, new):
        before = watch.scan(sub)
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))
        after = watch.scan(sub)
        return [ex.id for ex in watch.affected(exs, watch.changed_names(before, after), after, sub)]
    engine, nn = sub / "micrograd" / "engine.py", sub / "micrograd" / "nn.py"
    assert touched(nn, "            x = layer(x)\n", "            x = layer(x)  # same\n") == []       # a comment
    assert touched(nn, "            x = layer(x)  # same\n", "            x = (layer(x))\n") == []  # same AST
    assert touched(nn, "        return [p for layer in self.layers for p in layer.parameters()]",
                   "        return list(p for layer in self.layers for p in layer.parameters())") == ["micrograd.nn"]
    # Value is used by every exercise (nn's through its own file's import of it)
    assert touched(engine, "    def __repr__", "    def helper(self):\n        return 1\n\n    def __repr__") == \
        [ex.id for ex in exs]


def test_bad_input_is_named_not_a_crash(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "autograder", "watch", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "COLUMNS": "200"})
    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "No such directory" in missing.stdout
    empty = run(str(tmp_path))
    assert empty.returncode == 2 and "Nothing to watch" in empty.stdout
    for bad in ("-1", "x"):
        out = run(str(tmp_path), "--interval", bad)
        assert out.returncode == 2 and "--interval" in out.stderr and "Traceback" not in out.stderr
