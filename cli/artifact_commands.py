"""remote, pull, verify, validate."""
from __future__ import annotations

COMMANDS: list = []
