"""Every setting of a grading run, read once from the environment, with the command line's flags on top.

    config = Config.from_env()                                  # os.environ, read here and nowhere else
    config = Config.from_env(unsandboxed=args.unsandboxed)      # a flag overrides its variable

A bad value is refused here, naming the variable and the value (`ConfigError`), before anything starts.
The object is frozen and passed down (to `core.session.GradingSession`, which builds the runner and the
seeds from it). The secret is held but never shown: not in `repr`, `str`, nor `as_dict()`.

The environment variables (the one list; the README points here):

| variable | field | default | meaning |
|---|---|---|---|
| AUTOGRADER_SANDBOX | sandbox | auto | auto, bwrap, user or none: how the student's code is isolated |
| AUTOGRADER_SANDBOX_USER | sandbox_user | backprop-student | user mode: the dedicated unprivileged user |
| AUTOGRADER_SANDBOX_UIDS | sandbox_uids | 1900000000-1900000063 | user mode: `first-last`, uids of concurrent sandboxes |
| AUTOGRADER_PROTECT | protect | (none) | more paths the student's code must not reach (os.pathsep-separated) |
| AUTOGRADER_SECRET | secret | (none: no hidden cases) | hidden cases derive from it; never shown |
| AUTOGRADER_TRUTH_CACHE | truth_cache | $XDG_CACHE_HOME/backprop-lab/truths | `check`'s public truths: a directory, or off |
| AUTOGRADER_STARTUP_TIMEOUT | startup_timeout | 120 | seconds the sandbox's worker may take to start (torch) |
| AUTOGRADER_NOTEBOOK_TIME_LIMIT | notebook_time_limit | (the exercise's) | seconds per case in a notebook's grade cell |
| AUTOGRADER_DEBUG | debug | off | any non-empty value: the worker's stderr is shown |
| AUTOGRADER_ROOT | gradescope_root | /autograder | Gradescope's /autograder (its scripts: also _SOURCE, _SUBMISSION, _RESULTS, _BIN) |
| AUTOGRADER_ASSIGNMENTS | classroom_assignments | (detected) | GitHub Classroom: the repository's assignments |
| NBGRADER_EXECUTION | nbgrader_autograding | (unset) | `autograde` (nbgrader sets it): grade cells leave grading to the preprocessor |
| XDG_CACHE_HOME | (truth_cache) | ~/.cache | where the truth cache lives by default |

Flags (set by the command line on top of the environment): `unsandboxed` (--unsandboxed: grade for credit
without isolation, and say so), `public_only` (--public-only: no hidden cases, no secret needed),
`time_limit` (--time-limit: a cap on every case's time limit).

Read elsewhere, and not settings of a run: AUTOGRADER_SCRATCH and AUTOGRADER_SHARED_TMP are set by the
runner for the worker inside the sandbox (the runtime's own protocol).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

SANDBOX_MODES = ("auto", "bwrap", "user", "none")
DEFAULT_SANDBOX_USER = "backprop-student"
DEFAULT_SANDBOX_UIDS = (1_900_000_000, 1_900_000_063)
DEFAULT_STARTUP_TIMEOUT = 120.0
DEFAULT_GRADESCOPE_ROOT = "/autograder"
TRUTH_CACHE_OFF = ("off", "0", "no")
HIDDEN = "<hidden>"

# variable -> field: what `from_env` reads (and nothing else of the environment)
VARIABLES = {
    "AUTOGRADER_SANDBOX": "sandbox",
    "AUTOGRADER_SANDBOX_USER": "sandbox_user",
    "AUTOGRADER_SANDBOX_UIDS": "sandbox_uids",
    "AUTOGRADER_PROTECT": "protect",
    "AUTOGRADER_SECRET": "secret",
    "AUTOGRADER_TRUTH_CACHE": "truth_cache",
    "AUTOGRADER_STARTUP_TIMEOUT": "startup_timeout",
    "AUTOGRADER_NOTEBOOK_TIME_LIMIT": "notebook_time_limit",
    "AUTOGRADER_DEBUG": "debug",
    "AUTOGRADER_ROOT": "gradescope_root",
    "AUTOGRADER_ASSIGNMENTS": "classroom_assignments",
    "NBGRADER_EXECUTION": "nbgrader_autograding",
}


class ConfigError(ValueError):
    """A setting has a value the grader cannot use; the message names the variable (or flag) and the value."""


@dataclass(frozen=True, repr=False)
class Config:
    """The settings of one grading run (see the module's table for the variable behind each field)."""
    sandbox: str = "auto"
    sandbox_user: str = DEFAULT_SANDBOX_USER
    sandbox_uids: tuple[int, int] = DEFAULT_SANDBOX_UIDS
    protect: tuple[Path, ...] = ()
    secret: str = field(default="", repr=False)
    truth_cache: Path | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    notebook_time_limit: float | None = None
    debug: bool = False
    gradescope_root: Path = Path(DEFAULT_GRADESCOPE_ROOT)
    classroom_assignments: str = ""
    nbgrader_autograding: bool = False
    # flags
    unsandboxed: bool = False
    public_only: bool = False
    time_limit: float | None = None

    def __post_init__(self):
        # Overrides are checked as strictly as the environment (a flag or a caller's value, named as such).
        if self.sandbox not in SANDBOX_MODES:
            raise ConfigError(f"sandbox={self.sandbox!r} is not one of {', '.join(SANDBOX_MODES)}")
        for name in ("startup_timeout", "notebook_time_limit", "time_limit"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ConfigError(f"{name}={value!r} is not a positive number of seconds")
        object.__setattr__(self, "protect", tuple(Path(p) for p in self.protect))
        if self.truth_cache is not None:
            object.__setattr__(self, "truth_cache", Path(self.truth_cache))
        object.__setattr__(self, "gradescope_root", Path(self.gradescope_root))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Config":
        """The settings from `environ` (default: os.environ), read once here; `overrides` (the command line's
        flags, or a caller's values) replace what the environment says. ConfigError names a bad value."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"Config has no setting {', '.join(sorted(unknown))}")
        values = dict(
            sandbox=_choice(env, "AUTOGRADER_SANDBOX", SANDBOX_MODES, "auto"),
            sandbox_user=env.get("AUTOGRADER_SANDBOX_USER") or DEFAULT_SANDBOX_USER,
            sandbox_uids=_uid_range(env, "AUTOGRADER_SANDBOX_UIDS"),
            protect=tuple(Path(p) for p in env.get("AUTOGRADER_PROTECT", "").split(os.pathsep) if p),
            secret=env.get("AUTOGRADER_SECRET", ""),
            truth_cache=_truth_cache(env),
            startup_timeout=_seconds(env, "AUTOGRADER_STARTUP_TIMEOUT") or DEFAULT_STARTUP_TIMEOUT,
            notebook_time_limit=_seconds(env, "AUTOGRADER_NOTEBOOK_TIME_LIMIT"),
            debug=bool(env.get("AUTOGRADER_DEBUG")),
            gradescope_root=Path(env.get("AUTOGRADER_ROOT") or DEFAULT_GRADESCOPE_ROOT),
            classroom_assignments=env.get("AUTOGRADER_ASSIGNMENTS", ""),
            nbgrader_autograding=env.get("NBGRADER_EXECUTION") == "autograde",
        )
        values.update({k: v for k, v in overrides.items() if v is not None or k in _NULLABLE})
        return cls(**values)

    def with_flags(self, **flags) -> "Config":
        """This configuration with the command line's flags on top (None: the flag was not given)."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})

    @property
    def has_secret(self) -> bool:
        return bool(self.secret)

    def as_dict(self) -> dict:
        """The settings as plain values (for a log or JSON); the secret only as whether it is set."""
        out = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "protect" else v)
               for k, v in asdict(self).items()}
        out["secret"] = HIDDEN if self.secret else ""
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Config({shown})"

    __str__ = __repr__


_NULLABLE = {"truth_cache", "notebook_time_limit", "time_limit"}


FLAGS = ("unsandboxed", "public_only", "time_limit")


def for_command(args) -> Config:
    """A command's configuration: the environment as the command line's `main` read it once (`args.config`;
    read now for a command called on its own), with the command's flags on top (those it has and was given)."""
    config = getattr(args, "config", None) or Config.from_env()
    return config.with_flags(**{flag: getattr(args, flag) for flag in FLAGS if getattr(args, flag, None) is not None})


def _choice(env, name: str, allowed, default: str) -> str:
    raw = env.get(name, "")
    value = raw.strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
    return value


def _seconds(env, name: str) -> float | None:
    raw = env.get(name, "")
    if not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds")
    return value


def _uid_range(env, name: str) -> tuple[int, int]:
    raw = env.get(name, "")
    if not raw.strip():
        return DEFAULT_SANDBOX_UIDS
    try:
        first, last = (int(x) for x in raw.split("-", 1))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a range of uids `first-last` (e.g. 1900000000-1900000063)") from None
    if not 0 < first <= last:
        raise ConfigError(f"{name}={raw!r}: the range must be `first-last` with 0 < first <= last")
    return first, last


def _truth_cache(env) -> Path | None:
    chosen = env.get("AUTOGRADER_TRUTH_CACHE", "")
    if chosen.lower() in TRUTH_CACHE_OFF:
        return None
    if chosen:
        return Path(chosen)
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backprop-lab" / "truths"
