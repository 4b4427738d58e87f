"""Exercises declared as data.

An assignment module (`autograder/assignments/<name>.py`) declares a list of `Exercise`s. Each says:
- which student file and entry point it grades (`module`, `entry`) and its `points`;
- `cases(seeds)`: the cases to run, built in the grader's process from public or hidden seeds;
- `driver`: a "module:function" path, called *in the student's process* as `driver(student_module,
  inputs)`. It calls the student's code on the case inputs and returns plain results (tensors, floats,
  strings, lists, dicts of those). It must not compute any truth: whatever the student's process holds,
  the student can read;
- `truth(case)`: PyTorch autograd's answer, computed in the grader's process;
- `judge(case, outputs, truth)`: the per-check comparisons (default: `compare` on every key of truth);
- `mistakes`: the catalogue of known mistakes with their hints, matched by `diagnose`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # torch loads with compare; this module stays light for the command line
    from autograder.core.compare import Comparison

SECRET_ENV = "AUTOGRADER_SECRET"


@dataclass(frozen=True)
class Case:
    id: str                 # "public-0", "hidden-3": hidden ids never carry the seed or the inputs
    hidden: bool
    inputs: dict            # what the student's code receives (plain tensors, numbers)
    info: dict = field(default_factory=dict)  # grader-only (seed, extra tensors for the truth...)
    label: str = ""         # a description safe to show a student ("float64, batch 57")


@dataclass(frozen=True)
class Mistake:
    """A known mistake. `matches(got, case, truth, check)` returns True, or a string that completes the
    hint (e.g. the factor for `scale`), when a wrong answer is explained by this mistake."""
    id: str
    hint: str
    matches: Callable[..., Any] | None = None
    checks: tuple[str, ...] = ()    # restrict to these check names (empty: all)


@dataclass(frozen=True)
class Seeds:
    """Where cases come from. Public seeds are fixed; hidden seeds derive from AUTOGRADER_SECRET."""
    hidden: bool
    secret: str = ""

    def public(self, n: int) -> list[int]:
        return list(range(n))

    def hidden_seeds(self, exercise_id: str, n: int) -> list[int]:
        if not self.hidden:
            return []
        out = []
        for i in range(n):
            h = hashlib.sha256(f"{self.secret}|{exercise_id}|{i}".encode()).digest()
            out.append(int.from_bytes(h[:4], "little") + 1_000_000)  # never collides with public seeds
        return out

    @classmethod
    def from_env(cls, hidden: bool) -> "Seeds":
        """Public seeds, or (hidden) the hidden ones from AUTOGRADER_SECRET: SecretMissing when it is unset
        (there is no default secret: one in the public code would let anyone compute the hidden cases)."""
        return cls.for_credit(public_only=not hidden)

    @classmethod
    def for_credit(cls, public_only: bool = False) -> "Seeds":
        """Seeds for grading for credit: hidden cases need AUTOGRADER_SECRET (no default: a default in the
        public code would let anyone compute the hidden cases); `public_only` grades public cases only."""
        if public_only:
            return cls(hidden=False)
        secret = os.environ.get(SECRET_ENV, "")
        if not secret:
            raise SecretMissing(f"{SECRET_ENV} is not set: hidden cases derive from it. Set it (the same value "
                                "for every run of a course), or pass --public-only to grade public cases only")
        return cls(hidden=True, secret=secret)


class SecretMissing(RuntimeError):
    """Grading for credit was asked for without AUTOGRADER_SECRET."""


def default_judge(case: Case, outputs: dict, truth: dict) -> list[Comparison]:
    """`compare` every quantity of the truth with the student's output of the same name."""
    from autograder.core.compare import compare
    return [compare(name, outputs.get(name), expected) for name, expected in truth.items()]


@dataclass(frozen=True)
class Exercise:
    id: str                             # "<assignment>.<entry point>"
    module: str                         # the student's file, without .py
    entry: str                          # the student's function or class the exercise is about
    points: float
    cases: Callable[[Seeds], Sequence[Case]]
    driver: str                         # "package.module:function", run in the student's process
    truth: Callable[[Case], dict]
    judge: Callable[[Case, dict, dict], list[Comparison]] = default_judge
    mistakes: tuple[Mistake, ...] = ()
    check_points: dict[str, float] = field(default_factory=dict)  # weights per check; default equal
    time_limit: float = 20.0            # seconds per case run, wall clock
    memory_limit_mb: int = 2048         # address space; torch needs >= 1 GiB
    title: str = ""
    blocked_imports: tuple[str, ...] = ()  # modules the student's code may not import (e.g. torch)
    blocked_why: str = ""
    forbid_autograd: bool = False       # gradients by hand: autograd calls are tripwires
    files: tuple[str, ...] = ()         # the submission files this exercise needs (default: module's)

    @property
    def required_files(self) -> tuple[str, ...]:
        return self.files or (self.module.replace(".", "/") + ".py",)

    @property
    def assignment(self) -> str:
        return self.id.split(".", 1)[0]
