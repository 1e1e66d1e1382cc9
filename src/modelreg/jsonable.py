"""The `--json` form of a result that is its fields as they are."""

from __future__ import annotations

from typing import Any


class JsonFields:
    """A base for frozen dataclasses whose JSON form is their fields, unchanged (lists, dicts,
    strings, numbers and None already)."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)
