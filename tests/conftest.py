"""Shared fixtures: the repository's paths and one grading worker per test process."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Hidden cases need a secret (there is no default); the tests grade with this fixed one.
os.environ.setdefault("AUTOGRADER_SECRET", "backprop-lab-test-secret")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def runner():
    """One fork server for the whole session: tests grade many submissions, torch is imported once."""
    from autograder.sandbox import Runner
    with Runner() as r:
        r.start()
        yield r
