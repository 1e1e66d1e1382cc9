"""The model card, `models/<name>/model.yaml`: what a version is, in YAML a person can read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from modelreg import safe_yaml
from modelreg.errors import ModelregError

CARD_FILE = "model.yaml"
# Keys written by `register`; a `--card` file may add any others (description, signature,
# lineage...).
ORDER = (
    "name",
    "version",
    "description",
    "framework",
    "artifact",
    "created",
    "author",
    "message",
    "parent",
    "metrics",
    "params",
    "signature",
    "example",
    "inspection",
    "lineage",
)


def parse_card(text: bytes | str, where: str) -> dict[str, Any]:
    data = safe_yaml.load(text, where)
    if not isinstance(data, dict):
        raise ModelregError(f"{where}: expected a mapping")
    return data


def dump_card(card: dict[str, Any]) -> str:
    ordered = {k: card[k] for k in ORDER if k in card}
    ordered.update({k: v for k, v in card.items() if k not in ordered})
    return yaml.dump(
        ordered,
        Dumper=_NoAliasDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated object out again instead of an alias: a card reads the same without
    YAML's anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def section(card: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A mapping of a card (artifact, signature, inspection, lineage, metrics, params): {} when the
    card has none, or has something else under KEY."""
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def entries(mapping: Mapping[str, Any], key: str) -> list[Any]:
    """A list of a card's mapping (signature inputs, lineage deps): [] when absent or not a list."""
    value = mapping.get(key)
    return value if isinstance(value, list) else []


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """`k=v` options into a dict; values that read as numbers (`3`, `0.9`, `1e-3`) or booleans
    become them. Numbers that are not finite (nan, inf) are refused: JSON cannot carry them."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ModelregError(f"--{what} {pair[:60]!r}: expected KEY=VALUE")
        result[key.strip()] = parse_scalar(value, f"--{what} {key.strip()[:60]}")
    return result


def parse_scalar(text: str, where: str) -> Any:
    """An int, a finite float, a boolean, or the text itself."""
    word = text.strip()
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    if word.lower() in (".nan", ".inf", "+.inf", "-.inf"):  # YAML's spellings
        raise ModelregError(f"{where}: {word!r} is not a finite number")
    try:
        return int(word, 10)
    except ValueError:
        pass
    try:
        number = float(word)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ModelregError(f"{where}: {word[:40]!r} is not a finite number")
    return number


def check_finite(values: Any, where: str) -> None:
    """Refuse nan and infinity anywhere in `values` (a card's metrics, say)."""
    if isinstance(values, float) and not math.isfinite(values):
        raise ModelregError(f"{where}: {values} is not a finite number")
    if isinstance(values, dict):
        for key, value in values.items():
            check_finite(value, f"{where}.{key}")
    elif isinstance(values, list):
        for i, value in enumerate(values):
            check_finite(value, f"{where}[{i}]")
