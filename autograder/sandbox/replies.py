"""What comes back from the student's process, validated: `RunResult`, and the checks every reply passes
before a judge sees it (known statuses and kinds, decodable values, plain text only), and what a child's
death or stack dump means. Nothing here talks to a process: the client (client.py) hands replies in."""
from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field

from autograder.runtime import wire

# CSI / OSC / other escape sequences, then any remaining C0/C1 control character but tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text, limit: int | None = None) -> str:
    """`text` as plain characters: no ANSI escape sequence, no control character but newline and tab."""
    text = _CONTROLS.sub("", _ESCAPES.sub("", str(text).replace("\r\n", "\n")))
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


@dataclass
class RunResult:
    status: str                     # ok | error | timeout | not_implemented
    outputs: dict = field(default_factory=dict)
    message: str = ""
    where: str = ""
    kind: str = ""
    output: str = ""                # what the student's code printed (capped)
    seconds: float = 0.0
    autograd_calls: list = field(default_factory=list)


def _death_result(status) -> RunResult:
    """Why a child ended without replying for its current case."""
    if not isinstance(status, int):
        return RunResult("error", kind="crash", message="the grading process was killed while running this code")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU time limit exceeded", "SIGKILL": "killed (memory or time limit)",
               "SIGXFSZ": "wrote a file larger than the limit",
               "SIGSEGV": "crashed (segmentation fault; often the memory limit)"}.get(name, f"killed by {name}")
        return RunResult("timeout" if name == "SIGXCPU" else "error", kind="crash", message=why)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return RunResult("error", kind="exit",
                     message=f"the process exited (status {code}) without returning a result, e.g. os._exit()")



_KINDS = {"exception", "exit", "memory", "recursion", "blocked_import", "autograd_used", "internal"}


# faulthandler's first lines: its timer's (just before the deadline), and a fatal signal's (a crash)
_STACK_HEADER = re.compile(r"^(Timeout \(|Fatal Python error: )", re.M)
_STACK_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+)$', re.M)


def stack_at_timeout(output: str, root: str) -> tuple[str, str]:
    """(where the student's code was when the time ran out or it crashed, the output without the stack
    dump): the innermost frame in the submission of the stack the child printed."""
    found = list(_STACK_HEADER.finditer(output))
    if not found or not root:
        return "", output
    at = found[-1].start()
    prefix = root.rstrip("/") + "/"
    for frame in _STACK_FRAME.finditer(output, at):  # most recent call first
        if frame["file"].startswith(prefix):
            where = f"{frame['file'][len(prefix):]}, line {frame['line']}, in {frame['func'].strip()}"
            return plain(where, 300), output[:at].rstrip("\n")
    return "", output[:at].rstrip("\n")


_DUMP = re.compile(r"^Timeout \(\d+:\d\d:\d\d(?:\.\d+)?\)!\n(?:(?:Thread 0x[0-9a-f]+|Current thread 0x[0-9a-f]+|Stack)"
                   r"[^\n]*\n|  File \"[^\n]*\n|  \.\.\.[^\n]*\n|\n)*", re.M)


def _without_stack_dumps(output: str) -> str:
    """The case's output without the stack faulthandler printed shortly before its deadline, when the case
    then finished in time after all: that stack is the grader's timer, not something the student printed."""
    return _DUMP.sub("", output + "\n")[:-1] if "Timeout (" in output else output


def _to_result(reply: dict, output: str) -> RunResult:
    """A child's reply, validated: unknown statuses, kinds, shapes or sizes make it `malformed`."""
    output = _without_stack_dumps(output)
    status = reply.get("status")
    if status not in ("ok", "error", "not_implemented"):
        return RunResult("error", kind="malformed", message="the student's process sent an unknown reply",
                         output=output)
    outputs = {}
    if status == "ok":
        try:
            outputs = wire.decode(reply.get("outputs"))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            return RunResult("error", kind="malformed", output=output,
                             message=plain(f"returned a value the grader cannot read ({exc})", 300))
        if not isinstance(outputs, dict):
            outputs = {"value": outputs}
        outputs = _plain_strings(outputs)
    kind = str(reply.get("kind", ""))
    if status == "error" and kind not in _KINDS:
        kind = "exception"
    calls = reply.get("autograd_calls") or []
    return RunResult(status, outputs=outputs, message=plain(reply.get("message", ""), 2000),
                     where=plain(reply.get("where", ""), 300), kind=kind, output=output,
                     autograd_calls=[plain(c, 80) for c in calls][:10] if isinstance(calls, list) else [])


def _plain_strings(value):
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, list):
        return [_plain_strings(v) for v in value]
    if isinstance(value, dict):
        return {(plain(k) if isinstance(k, str) else k): _plain_strings(v) for k, v in value.items()}
    return value
