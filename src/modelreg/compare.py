"""`modelreg diff A B`: what changed between two versions, and whether B can replace A for A's
callers.

The compatibility verdict reads the cards' signatures (Open Inference Protocol terms: names, dtypes,
shapes, -1 a free dimension). Breaking: an input removed (callers send it; the server refuses an
unknown input), an input added without a default, a dtype changed, a rank changed, a fixed
dimension changed or an input's free dimension fixed, an output removed. Compatible: an output
added, an optional input added, a fixed dimension relaxed to -1, an output's free dimension fixed.
Everything is read from the two tags (and, for folders, the DVC `.dir` listings in the remote): no
artifact is downloaded.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from modelreg.card import entries, section
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.versions import Resolved

BREAKING, COMPATIBLE = "breaking", "compatible"
CARD_FIELDS = ("description", "message", "author", "created", "parent", "framework", "tags")


@dataclass(frozen=True)
class Reason(JsonFields):
    kind: str  # breaking or compatible
    where: str  # inputs.x, outputs.y
    text: str


@dataclass(frozen=True)
class Verdict:
    reasons: list[Reason]

    @property
    def breaking(self) -> bool:
        return any(r.kind == BREAKING for r in self.reasons)

    @property
    def word(self) -> str:
        return BREAKING if self.breaking else COMPATIBLE

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.word, "reasons": [r.to_json() for r in self.reasons]}


@dataclass(frozen=True)
class Diff:
    old: str
    new: str
    verdict: Verdict
    card: dict[str, tuple[Any, Any]] = field(
        default_factory=dict
    )  # field -> (old, new), changed ones only
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {old, new, delta}
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    artifact: dict[str, Any] = field(default_factory=dict)  # sha256 old/new, size, per-file changes
    latency: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # device -> {old, new, delta} p50 ms
    manifests: dict[str, str] = field(
        default_factory=dict
    )  # env -> unified diff of the rendered manifests

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            **self.verdict.to_json(),
            "card": {k: {"old": a, "new": b} for k, (a, b) in self.card.items()},
            "metrics": self.metrics,
            "params": {k: {"old": a, "new": b} for k, (a, b) in self.params.items()},
            "artifact": self.artifact,
            "validation_p50_ms": self.latency,
            "manifests": self.manifests,
        }


def _delta(old: Any, new: Any) -> float | None:
    """NEW - OLD when both are numbers (booleans are not)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    return round(new - old, 12) if numbers else None


def _entries(card: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    signature = section(card, "signature")
    listed = entries(signature, key)
    return {str(e.get("name")): e for e in listed if isinstance(e, dict)}


def _shape(entry: dict[str, Any]) -> list[int]:
    shape = entry.get("shape")
    return [int(d) for d in shape] if isinstance(shape, list) else []


def _optional(entry: dict[str, Any]) -> bool:
    return "default" in entry or entry.get("optional") is True


def compatibility(old: dict[str, Any], new: dict[str, Any]) -> Verdict:
    """Can the version with card NEW replace the one with card OLD for OLD's callers?"""
    reasons: list[Reason] = []
    for key in ("inputs", "outputs"):
        before, after = _entries(old, key), _entries(new, key)
        for name in sorted(before.keys() - after.keys()):
            reasons.append(
                Reason(
                    BREAKING,
                    f"{key}.{name}",
                    f"{key[:-1]} {name!r} removed"
                    + (": callers send it" if key == "inputs" else ""),
                )
            )
        for name in sorted(after.keys() - before.keys()):
            if key == "outputs":
                reasons.append(Reason(COMPATIBLE, f"{key}.{name}", f"output {name!r} added"))
            elif _optional(after[name]):
                reasons.append(
                    Reason(COMPATIBLE, f"{key}.{name}", f"optional input {name!r} added")
                )
            else:
                reasons.append(
                    Reason(
                        BREAKING,
                        f"{key}.{name}",
                        f"input {name!r} added without a default: callers do not send it",
                    )
                )
        for name in sorted(before.keys() & after.keys()):
            reasons += _tensor(key, name, before[name], after[name])
    return Verdict(reasons)


def _tensor(key: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> list[Reason]:
    where = f"{key}.{name}"
    was, now = str(old.get("dtype", "float32")), str(new.get("dtype", "float32"))
    reasons = []
    if was != now:
        reasons.append(Reason(BREAKING, where, f"dtype {was} -> {now}"))
    a, b = _shape(old), _shape(new)
    if len(a) != len(b):
        return reasons + [Reason(BREAKING, where, f"rank {len(a)} -> {len(b)} (shape {a} -> {b})")]
    for axis, (x, y) in enumerate(zip(a, b)):
        if x == y:
            continue
        if y == -1:
            reasons.append(Reason(COMPATIBLE, where, f"dimension {axis} relaxed: {x} -> -1"))
        elif x == -1 and key == "outputs":
            reasons.append(
                Reason(COMPATIBLE, where, f"dimension {axis} of an output fixed: -1 -> {y}")
            )
        elif x == -1:
            reasons.append(
                Reason(
                    BREAKING,
                    where,
                    f"dimension {axis} fixed: -1 -> {y} (callers may send other sizes)",
                )
            )
        else:
            reasons.append(Reason(BREAKING, where, f"dimension {axis} changed: {x} -> {y}"))
    return reasons


def diff(registry: Registry, old: Resolved, new: Resolved, envs: list[str] | None = None) -> Diff:
    """Everything that differs between OLD and NEW; ENVS: also the manifests each would get
    there."""
    a, b = old.card, new.card
    card = {k: (a.get(k), b.get(k)) for k in CARD_FIELDS if a.get(k) != b.get(k)}
    metrics = {}
    ma, mb = section(a, "metrics"), section(b, "metrics")
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        if x != y:
            metrics[name] = {"old": x, "new": y, "delta": _delta(x, y)}
    pa, pb = section(a, "params"), section(b, "params")
    params = {
        k: (pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)
    }
    return Diff(
        old.info.tag,
        new.info.tag,
        compatibility(a, b),
        card,
        metrics,
        params,
        _artifact(registry, old, new),
        _latency(registry, old, new),
        {env: _manifests(registry, old, new, env) for env in envs or []},
    )


def _artifact(registry: Registry, old: Resolved, new: Resolved) -> dict[str, Any]:
    x, y = section(old.card, "artifact"), section(new.card, "artifact")
    found: dict[str, Any] = {
        "same": x.get("sha256") == y.get("sha256"),
        "sha256": {"old": x.get("sha256"), "new": y.get("sha256")},
        "size": {"old": x.get("size"), "new": y.get("size")},
    }
    if old.pointer.is_dir and new.pointer.is_dir and old.pointer.md5 != new.pointer.md5:
        found["files"] = _file_changes(registry, old, new)
    return found


def _file_changes(registry: Registry, old: Resolved, new: Resolved) -> dict[str, list[str]] | str:
    """Per file of two folders: added, removed, changed (by the md5 each DVC `.dir` listing
    records)."""
    from modelreg.remote import dir_listing

    try:
        before, after = dir_listing(registry, old), dir_listing(registry, new)
    except Exception as exc:  # the listing lives in the remote: without it, say so and go on
        return f"not compared: {type(exc).__name__}: {exc}"[:300]
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }


def _latency(registry: Registry, old: Resolved, new: Resolved) -> dict[str, dict[str, Any]]:
    from modelreg.validate import read_records

    x = read_records(registry, old.info.commit).get(old.info.tag, {})
    y = read_records(registry, new.info.commit).get(new.info.tag, {})
    out = {}
    for device in sorted(set(x) & set(y)):
        p50a, p50b = x[device].get("p50_ms"), y[device].get("p50_ms")
        if isinstance(p50a, (int, float)) and isinstance(p50b, (int, float)):
            out[device] = {"old": p50a, "new": p50b, "delta": round(p50b - p50a, 3)}
    return out


def _manifests(registry: Registry, old: Resolved, new: Resolved, env: str) -> str:
    from modelreg.render import render

    def text(found: Resolved) -> list[str]:
        files = render(registry, found, env).files
        return [f"# {name}\n" + data.decode() for name, data in sorted(files.items())]

    lines = (
        "".join(text(old)).splitlines(keepends=True),
        "".join(text(new)).splitlines(keepends=True),
    )
    return "".join(
        difflib.unified_diff(
            *lines, fromfile=f"{old.info.tag} ({env})", tofile=f"{new.info.tag} ({env})"
        )
    )
