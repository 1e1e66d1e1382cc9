"""history: registrations (version tags) and deploys/rollbacks (deploy-branch trailers), newest first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg import target
from modelreg.refs import check_name
from modelreg.registry import Registry
from modelreg.versions import scan


@dataclass(frozen=True)
class Event:
    timestamp: int
    action: str
    model: str
    version: str
    env: str | None
    author: str
    commit: str
    note: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def history(registry: Registry, model: str | None = None, env: str | None = None) -> list[Event]:
    """Events newest first. Registrations are ordered by version and deploys by branch order,
    both within the same second, so equal timestamps never shuffle them."""
    if model is not None:
        check_name(model)
    if env is not None:
        registry.config.env(env)
    events: list[tuple[int, int, Event]] = []  # (timestamp, arrival order, event)
    if env is None:
        for info in scan(registry, model):
            events.append((info.timestamp, len(events), Event(
                timestamp=info.timestamp, action="register", model=info.model, version=str(info.version), env=None,
                author=info.author, commit=info.commit,
                note=info.message if info.valid else f"INVALID: {info.problem}")))
    records = target.read_log(registry, model)
    for record in reversed(records):
        if (model is None or record.model == model) and (env is None or record.env == env):
            events.append((record.timestamp, len(events), Event(
                timestamp=record.timestamp, action=record.action, model=record.model, version=record.version,
                env=record.env, author=record.author, commit=record.commit,
                note=f"from {record.previous_version}" if record.previous_version not in ("", "none") else "")))
    events.sort(key=lambda item: item[:2], reverse=True)
    return [event for _, _, event in events]
