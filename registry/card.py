"""The model card, `models/<name>/model.yaml`: what a version is, in YAML a person can read."""
from __future__ import annotations

from typing import Any

import yaml

from modelreg.errors import ModelregError

CARD_FILE = "model.yaml"
# Keys written by `register`; a `--card` file may add any others (description, signature, lineage...).
ORDER = ("name", "version", "description", "framework", "artifact", "created", "author", "message", "parent",
         "metrics", "params", "signature", "example", "inspection", "lineage")


def parse_card(text: bytes | str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelregError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ModelregError(f"{where}: expected a mapping")
    return data


def dump_card(card: dict[str, Any]) -> str:
    ordered = {k: card[k] for k in ORDER if k in card}
    ordered.update({k: v for k, v in card.items() if k not in ordered})
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, default_flow_style=False)


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """`k=v` options into a dict; values that read as numbers or booleans become them."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ModelregError(f"--{what} {pair!r}: expected KEY=VALUE")
        parsed = yaml.safe_load(value) if value else ""
        result[key] = parsed if isinstance(parsed, (int, float, bool)) else value
    return result
