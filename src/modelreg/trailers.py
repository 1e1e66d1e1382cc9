"""The `Modelreg-*` trailers of deploy-branch commits: the one place they are written and read.

Every commit modelreg lands on the deploy branch is a title, a blank line and `Modelreg-Key: value`
lines (git's trailer format, so `git log --format=%(trailers)` shows them). The records of
`target` are parsed from them; nothing else in the tree spells the prefix.
"""

from __future__ import annotations

import re

PREFIX = "Modelreg-"
_LINE = re.compile(rf"^{PREFIX}([A-Za-z-]+):[ \t]*(.*)$", re.MULTILINE)

Trailers = list[tuple[str, str]]  # (key without the prefix, value), in the order written


def message(title: str, trailers: Trailers) -> str:
    """A commit message: TITLE, then one trailer line per (key, value); an empty value writes no
    line."""
    return title + "\n\n" + "\n".join(f"{PREFIX}{k}: {v}" for k, v in trailers if v) + "\n"


def parse(text: str) -> dict[str, str]:
    """key -> value of the `Modelreg-*` trailers in TEXT (a message, or git's trailer block); the
    last wins when a key repeats."""
    return dict(_LINE.findall(text))
