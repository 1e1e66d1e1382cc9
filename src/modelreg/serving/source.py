"""Which version `modelreg serve` runs: a reference, what the deploy branch says is live in an
environment, or (in a pod, with no git repo) a card file beside a fetched artifact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelreg import target
from modelreg.card import parse_card, section
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.refs import check_name
from modelreg.versions import Resolved, resolve


def live_version(registry: Registry, env: str, model: str | None) -> Resolved:
    """The version live in ENV (for MODEL, or the default or only model there)."""
    registry.config.env(env)
    records = target.read_log(registry, check_name(model) if model else None)
    models = sorted({r.model for r in records if r.env == env and r.changes_manifests})
    name = model or registry.config.default_model or (models[0] if len(models) == 1 else None)
    if name is None:
        raise ModelregError(
            f"which model? {env} runs {', '.join(models) or 'nothing'}: pass --model NAME"
        )
    record = target.live(records, env, name)
    if record is None:
        raise ModelregError(f"nothing of {name} is live in {env}: deploy a version first")
    return resolve(registry, record.tag or f"{name}@{record.version}")


CARD_VARIABLE = "MODELREG_CARD"


def pod_card(path: Path | None) -> dict[str, Any]:
    """The card rendered into the pod: a file (a ConfigMap, Deployment) or the MODELREG_CARD
    variable (KServe). Name, version, artifact path and SHA-256, and the signature are what serving
    needs."""
    if path is not None:
        try:
            card = parse_card(path.read_bytes(), str(path))
        except OSError as exc:
            raise ModelregError(f"--card {path}: {exc.strerror}") from None
    elif os.environ.get(CARD_VARIABLE):
        card = parse_card(os.environ[CARD_VARIABLE], CARD_VARIABLE)
    else:
        raise ModelregError(
            f"--model-dir needs the model card: --card FILE, or the {CARD_VARIABLE} variable"
        )
    artifact = section(card, "artifact")
    if (
        not card.get("name")
        or not card.get("version")
        or not artifact.get("sha256")
        or not artifact.get("path")
    ):
        raise ModelregError("the model card needs name, version, artifact.path and artifact.sha256")
    return card


def pod_artifact(model_dir: Path, card: dict[str, Any]) -> Path:
    """The artifact in MODEL_DIR: under its registered name (modelreg fetch), or the one file there
    (KServe's storage initializer names it after the object's URL)."""
    named = model_dir / str(card["artifact"]["path"])
    if named.exists():
        return named
    files = (
        [p for p in model_dir.iterdir() if not p.name.startswith(".")] if model_dir.is_dir() else []
    )
    if len(files) == 1:
        return files[0]
    raise ModelregError(
        f"{model_dir} holds no {named.name} (and not exactly one file): was the artifact fetched?"
    )
