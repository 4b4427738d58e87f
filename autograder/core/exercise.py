"""Exercises declared as data.

An assignment package (`autograder/assignments/<name>/`, registered: see `autograder.assignments`) declares a
list of `Exercise`s in its `__init__`. Each says:
- which student file and entry point it grades (`module`, `entry`) and its `points`;
- `cases(seeds)`: the cases to run, built in the grader's process from public or hidden seeds;
- `driver`: a "module:function" path, called *in the student's process* as `driver(student_module,
  inputs)`. It calls the student's code on the case inputs and returns plain results (tensors, floats,
  strings, lists, dicts of those). It must not compute any truth: whatever the student's process holds,
  the student can read;
- `truth(case)`: PyTorch autograd's answer, computed in the grader's process;
- `judge(case, outputs, truth)`: the per-check comparisons (default: `compare` on every key of truth);
- `mistakes`: the catalogue of known mistakes with their hints, matched by `diagnose`;
- `tolerance`: how far from the truth a right answer may be. Its one home: the judge is called with it
  (a judge marked `@takes_tolerance` gets it as `tolerance=`) and `diagnose` describes errors with it, so a
  hint never calls wrong what the judge passed.
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
class Tolerance:
    """|got - expected| <= atol * scale + rtol * |expected|, elementwise, whatever the dtype.

    `scale` is the magnitude of the quantities the answer is computed from (by default the largest
    |expected|, or 1 where that is 0). An exercise passes its own where the truth comes from
    cancellation: dlogit_maxes is mathematically 0, a sum of terms of size ~1/n, so its rounding noise
    is relative to those terms, not to itself.
    """
    rtol: float
    atol: float

    def for_dtype(self, dtype: Any = None) -> "Tolerance":
        return self


@dataclass(frozen=True)
class DtypeTolerance:
    """A tolerance per dtype of the truth (the same exercise has float32 and float64 cases); a dtype not
    listed gets the float64 one."""
    float16: Tolerance
    bfloat16: Tolerance
    float32: Tolerance
    float64: Tolerance

    def for_dtype(self, dtype: Any = None) -> Tolerance:
        name = str(dtype).removeprefix("torch.")  # a torch.dtype or its name; torch stays unimported here
        return getattr(self, name) if name in ("float16", "bfloat16", "float32", "float64") else self.float64


# Derived from machine epsilon: float32 eps = 1.2e-7, float64 eps = 2.2e-16. A correct answer computed
# in a different order (e.g. `(1 - h**2) * dh`) is off by a few hundred ulps at most after a long chain;
# every catalogued mistake is off by >= 1e-3 relative (the smallest, Bessel at n=64, is 1.6%).
DTYPE_DEFAULT = DtypeTolerance(float16=Tolerance(rtol=1e-2, atol=1e-3), bfloat16=Tolerance(rtol=2e-2, atol=1e-2),
                               float32=Tolerance(rtol=1e-4, atol=1e-5), float64=Tolerance(rtol=1e-9, atol=1e-11))


def takes_tolerance(judge: Callable) -> Callable:
    """Mark a judge that takes the exercise's tolerance: the exercise calls it with `tolerance=`."""
    judge.takes_tolerance = True
    return judge


@dataclass(frozen=True)
class ToleranceBound:
    """A judge called with its exercise's tolerance: `judge(case, outputs, truth)` as for any judge."""
    judge: Callable
    tolerance: Any

    def __call__(self, case: "Case", outputs: dict, truth: dict) -> list:
        return self.judge(case, outputs, truth, tolerance=self.tolerance)


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


@takes_tolerance
def default_judge(case: Case, outputs: dict, truth: dict, *, tolerance=DTYPE_DEFAULT) -> list[Comparison]:
    """`compare` every quantity of the truth with the student's output of the same name."""
    from autograder.core.compare import compare
    return [compare(name, outputs.get(name), expected, tolerance=tolerance) for name, expected in truth.items()]


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
    tolerance: Tolerance | DtypeTolerance = DTYPE_DEFAULT  # what the judge and diagnose allow a right answer

    def __post_init__(self):
        judge = self.judge.judge if isinstance(self.judge, ToleranceBound) else self.judge  # dataclasses.replace
        if getattr(judge, "takes_tolerance", False):
            object.__setattr__(self, "judge", ToleranceBound(judge, self.tolerance))

    @property
    def required_files(self) -> tuple[str, ...]:
        return self.files or (self.module.replace(".", "/") + ".py",)

    @property
    def assignment(self) -> str:
        return self.id.split(".", 1)[0]
