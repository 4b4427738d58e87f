"""Verdicts and the stub marker: torch-free, so the command line and renderers start fast."""
from __future__ import annotations

# Verdicts, best first. The order is used to aggregate a check over several cases.
EXACT, APPROX, WRONG, ERROR, TIMEOUT, NOT_IMPLEMENTED = (
    "exact", "approx", "wrong", "error", "timeout", "not_implemented")
VERDICTS = (EXACT, APPROX, WRONG, ERROR, TIMEOUT, NOT_IMPLEMENTED)
PASSING = (EXACT, APPROX)


def worst(*verdicts: str) -> str:
    return max(verdicts, key=VERDICTS.index)


class NotImplementedMarker:
    """What a stub returns (or what the runner substitutes when a stub raised NotImplementedError)."""

    def __repr__(self) -> str:
        return "NOT_IMPLEMENTED"


NOT_IMPLEMENTED_VALUE = NotImplementedMarker()
