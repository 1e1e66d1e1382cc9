"""The `Modelreg-*` trailers: what `trailers.message` writes, `trailers.parse` reads back, and git
itself sees as trailers (the deploy log is read through `%(trailers)`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import git
from modelreg import trailers

CASES = [
    [("Action", "deploy"), ("Model", "churn"), ("Version", "v3"), ("Env", "prod")],
    [("Action", "quarantine"), ("Reason", "drift on March traffic: p99 1.2 s; 5xx 3%")],
    [("Reason", "a: b: c"), ("Restored-From", "0" * 40)],
]


@pytest.mark.parametrize("fields", CASES)
def test_what_is_written_is_read_back_and_git_agrees(tmp_path: Path, fields: list) -> None:
    text = trailers.message("Deploy churn@v3 to prod", fields)
    assert trailers.parse(text) == dict(fields)
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", text)
    seen = git(tmp_path, "log", "-1", "--format=%(trailers:only,unfold)")
    assert trailers.parse(seen) == dict(fields)


def test_other_lines_are_not_trailers() -> None:
    text = (
        "Deploy\n\nSigned-off-by: someone\nmodelreg-Action: lowercase prefix\nModelreg-Model: m\n"
    )
    assert trailers.parse(text) == {"Model": "m"}
