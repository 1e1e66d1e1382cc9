"""history: registrations (version tags) and deploys/rollbacks (deploy-branch trailers), newest
first."""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass

from modelreg import git, policy, target
from modelreg.card import CARD_FILE, parse_card
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.refs import check_name
from modelreg.versions import scan


@dataclass(frozen=True)
class Event(JsonFields):
    timestamp: int
    action: str
    model: str
    version: str
    env: str | None
    author: str
    commit: str
    note: str


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
            events.append(
                (
                    info.timestamp,
                    len(events),
                    Event(
                        timestamp=info.timestamp,
                        action="register",
                        model=info.model,
                        version=str(info.version),
                        env=None,
                        author=info.author,
                        commit=info.commit,
                        note=info.message if info.valid else f"INVALID: {info.problem}",
                    ),
                )
            )
    records = target.read_log(registry, model)
    for record in reversed(records):
        # quarantines hold in every environment: they show under any --env
        if (model is None or record.model == model) and (env is None or record.env in (env, "")):
            where = record.env or None
            event = Event(
                record.timestamp, record.action, record.model, record.version, where,
                record.author, record.commit, _note(record),
            )  # fmt: skip
            events.append((record.timestamp, len(events), event))
    events.sort(key=lambda item: item[:2], reverse=True)
    return [event for _, _, event in events]


def _note(record: target.DeployRecord) -> str:
    if record.action == "analysis":
        return f"{record.verdict} at {record.weight}%: {record.reason}"
    if record.action in ("canary-start", "canary-step"):
        return f"at {record.weight}% beside {record.previous_version}"
    if record.action == "canary-abort":
        return f"back to {record.previous_version} from {record.weight}%: {record.reason}"
    if record.reason:
        return record.reason
    parts = (
        [f"from {record.previous_version}"] if record.previous_version not in ("", "none") else []
    )
    if record.restored_from:
        parts.append(f"restores {record.restored_from[:8]}")
    if record.forced:
        parts.append("forced")
    return ", ".join(parts)


@dataclass(frozen=True)
class LiveAt(target.Live):
    """What ran in an environment at a moment, for one model."""

    tag_object: str
    sha256: str | None
    author: str
    timestamp: int
    rollback: bool  # action == "rollback", for --json readers
    canary: dict | None = None  # a canary running then: candidate, weight, newest verdict


RELATIVE = re.compile(r"(\d{1,9})\s*(second|minute|hour|day|week|month|year)s?\s+ago")
UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
DAY_WORDS = {"now": 0, "today": 0, "yesterday": 1}
TIME_EXAMPLES = (
    'such as 2026-03-01, 2026-03-01T14:00Z, "2 days ago", "yesterday 14:00" or @1767225600'
)


def parse_time(text: str, now: float | None = None) -> int:
    """A moment in seconds since the epoch: ISO 8601 (a date, or a date and time; UTC unless it says
    otherwise), `N units ago`, `now`, `today`/`yesterday` [HH:MM] or `@SECONDS`. Anything else is an
    error naming what was given: a misspelling never silently means "now"."""
    word = " ".join(text.strip().lower().split())
    now = time.time() if now is None else now
    fail = ModelregError(f"--at {text.strip()[:40]!r} is not a time: give one {TIME_EXAMPLES}")
    if not word or len(word) > 60:
        raise fail
    if word.startswith("@") and word[1:].isdigit() and len(word) <= 13:
        return int(word[1:])
    if (match := RELATIVE.fullmatch(word)) is not None:
        return int(now) - int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    day, _, clock = word.partition(" ")
    if day in DAY_WORDS:
        if day == "now" and not clock:
            return int(now)
        base = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) - datetime.timedelta(
            days=DAY_WORDS[day]
        )
        hours, minutes = _clock(clock, fail) if clock else (0, 0)
        return int(base.replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp())
    iso = re.sub(r"\s+([+-]\d{2}:?\d{2})$", r"\1", word.upper()).replace(
        "Z", "+00:00"
    )  # git's `... +0000`
    try:
        moment = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise fail from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


def _clock(text: str, fail: ModelregError) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if match is None:
        raise fail
    return int(match.group(1)), int(match.group(2))


def live_at(registry: Registry, env: str, moment: int) -> list[LiveAt]:
    """For each model, what the deploy branch said was live in ENV at MOMENT (a deploy commit's time
    is when it landed), with the tag object and artifact SHA-256 it ran."""
    registry.config.env(env)
    chosen: dict[str, target.DeployRecord] = {}
    then = [r for r in target.read_log(registry) if r.timestamp <= moment]  # newest first
    for record in then:
        if record.env == env and record.changes_manifests:
            chosen.setdefault(record.model, record)
    ordered = sorted(chosen.items())
    running = {
        c.model: {k: c.to_json()[k] for k in ("candidate", "tag", "weight", "verdict", "summary")}
        for c in policy.canaries(then)
        if c.env == env
    }
    cards = git.read_objects(
        registry.root,
        [f"{r.source_commit}:{registry.model_dir(m)}/{CARD_FILE}" for m, r in ordered],
    )
    result = []
    for (model, record), card in zip(ordered, cards):
        result.append(
            LiveAt(
                env=env,
                model=model,
                version=record.version,
                tag=record.tag,
                tag_object=record.tag_object,
                sha256=_sha256(card),
                commit=record.commit,
                author=record.author,
                timestamp=record.timestamp,
                action=record.action,
                rollback=record.action == "rollback",
                canary=running.get(model),
            )
        )
    return result


def _sha256(card: tuple[str, bytes] | None) -> str | None:
    if card is None:
        return None
    try:
        artifact = parse_card(card[1], "card").get("artifact")
    except ModelregError:
        return None
    return artifact.get("sha256") if isinstance(artifact, dict) else None
