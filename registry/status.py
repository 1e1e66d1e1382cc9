"""status: what is live in each environment, and whether the deploy branch drifted from it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg import target
from modelreg.errors import ModelregError
from modelreg.registry import Registry
from modelreg.render import render
from modelreg.versions import resolve


@dataclass(frozen=True)
class LiveState:
    env: str
    model: str
    version: str
    tag: str
    since: int
    by: str
    action: str
    commit: str
    drift: str  # "none", "edited" (differs from its deploy commit), "stale" (differs from a fresh render), or an error

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status(registry: Registry, env: str | None = None, check_render: bool = True) -> list[LiveState]:
    envs = [registry.config.env(env).name] if env else list(registry.config.environments)
    records = target.read_log(registry)
    tip = target.tip(registry)
    states = []
    for env_name in envs:
        for model in sorted({r.model for r in records if r.env == env_name}):
            record = target.live(records, env_name, model)
            assert record is not None
            states.append(LiveState(env=env_name, model=model, version=record.version, tag=record.tag,
                                    since=record.timestamp, by=record.author, action=record.action,
                                    commit=record.commit, drift=_drift(registry, record, tip, check_render)))
    return states


def _drift(registry: Registry, record: target.DeployRecord, tip: str | None, check_render: bool) -> str:
    path = target.deploy_path(registry, record.env, record.model)
    on_branch = target.files_at(registry, tip, path)
    if on_branch != target.files_at(registry, record.commit, path):
        return "edited"
    if not check_render:
        return "none"
    try:
        files = render(registry, resolve(registry, record.tag), record.env).files
    except ModelregError as exc:
        return f"unrenderable: {exc}"
    return "none" if {n: target.blob_id(d) for n, d in files.items()} == on_branch else "stale"
