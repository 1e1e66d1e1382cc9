"""The words of a canary analysis and how one check reads on a line: shared by `analyze`, which
judges, and the readers of its records (`show`), which should not load what judging needs."""

from __future__ import annotations

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


def check_line(name: str, value: float | None, condition: str, outcome: str) -> str:
    """One check on one line: `success_rate = 0.71, needs >= 0.99 (min_success_rate): failed`."""
    shown = "no data" if value is None else f"{value:.6g}"
    return f"{name} = {shown}, needs {condition}: {outcome}"
