"""YAML from users (cards, modelreg.yaml, pointers, rendered manifests), parsed with bounded cost.

PyYAML's safe loader shares aliased nodes, so a few hundred bytes of `&a [*a, *a, ...]` load fast
but stand for billions of values: whatever walks them later (JSON output, a template, a dump)
never ends (the "billion laughs"). Here the expanded size of a document is counted (linear in
its distinct nodes) and refused over MAX_NODES; documents have a size limit; numbers Python
refuses to parse (more than 4,300 digits) are errors, not crashes. Aliases as PyYAML itself
writes them for a repeated object stay accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from modelreg.errors import ModelregError

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000  # values in a document once every alias is expanded


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser when present), refusing documents whose aliases expand past
    MAX_NODES values: composing stays in the parser, constructing in Python, checked in between."""

    def construct_document(self, node: Any) -> Any:
        expanded = _expanded_size(node, {})
        if expanded > MAX_NODES:
            raise yaml.YAMLError(f"its aliases expand to over {MAX_NODES} values (a YAML bomb?)")
        return super().construct_document(node)


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values NODE stands for with aliases expanded; each distinct node is visited once."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a node that contains itself expands without end
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


def _text(data: bytes | str, where: str, error: type[ModelregError], max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise error(f"{where} is too large ({len(data)} bytes; at most {max_bytes})")
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValueError):
        return "a number is too large"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1})" if mark else exc.problem
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load(
    data: bytes | str,
    where: str,
    error: type[ModelregError] = ModelregError,
    max_bytes: int = MAX_BYTES,
) -> Any:
    """One YAML document; `error(...)` naming `where` for anything malformed, aliased or too
    large."""
    text = _text(data, where, error, max_bytes)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise error(f"{where} is not valid YAML: {_problem(exc)}") from None


def load_all(
    data: bytes | str,
    where: str,
    error: type[ModelregError] = ModelregError,
    max_bytes: int = MAX_BYTES,
) -> list[Any]:
    """Every document of a YAML stream, under the same rules as `load`."""
    text = _text(data, where, error, max_bytes)
    try:
        docs: Iterator[Any] = yaml.load_all(text, Loader=_Loader)  # noqa: S506
        return list(docs)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise error(f"{where} is not valid YAML: {_problem(exc)}") from None
