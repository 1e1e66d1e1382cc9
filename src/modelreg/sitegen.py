"""`modelreg site`: a static site of the registry, from git alone: no server, no database, no CDN.

One pass over the refs: the version tags (one for-each-ref), their cards (one cat-file batch), the
deploy branch's log (one git log) and the manifests each deploy committed (two cat-file batches).
Every value is escaped by the templates (Jinja autoescape); nothing is read from `.dvc/config.local`
or the environment, so no credential can reach a page.
"""

from __future__ import annotations

import difflib
import functools
import http.server
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modelreg import git, policy, target
from modelreg.card import CARD_FILE, parse_card, section
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.versions import VersionInfo, scan

STATIC = ("site.css", "site.js")


@dataclass
class Version:
    info: VersionInfo
    card: dict[str, Any]
    card_text: str  # the card as committed
    deployed: dict[str, target.DeployRecord] = field(
        default_factory=dict
    )  # env -> its latest deploy of this version
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)  # env -> file -> text
    diffs: dict[str, str] = field(
        default_factory=dict
    )  # env -> unified diff against the previous version there
    against: dict[str, Any] = field(
        default_factory=dict
    )  # the previous version: {tag, verdict, reasons, metrics}

    @property
    def page(self) -> str:
        return f"version-{self.info.model}-{self.info.version}.html"


@dataclass(frozen=True)
class SiteResult(JsonFields):
    path: str
    pages: int
    versions: int
    seconds: float


MARKER = (
    ".modelreg-site"  # in every folder `site` writes: the only non-empty folder it will replace
)


def build_site(registry: Registry, out: Path) -> SiteResult:
    """Write the site into OUT: a new or empty folder, or one `site` wrote before (its marker file),
    replaced as a whole (a half-written site never shows). Never a folder with anything else in
    it."""
    started = time.perf_counter()
    out = out.resolve()
    check_output(registry, out)
    versions = _versions(registry)
    records = target.read_log(registry)
    _attach_deploys(registry, versions, records)
    pages = _pages(registry, versions, records)
    staging = out.with_name(f".{out.name}.modelreg-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, text in pages.items():
        (staging / name).write_text(text, encoding="utf-8")
    for name in STATIC:
        (staging / name).write_text(
            resources.files("modelreg.templates").joinpath("site").joinpath(name).read_text()
        )
    (staging / MARKER).write_text("written by `modelreg site`: the next run replaces this folder\n")
    if out.exists():
        old = out.with_name(f".{out.name}.modelreg-old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
    return SiteResult(
        path=str(out),
        pages=len(pages),
        versions=len(versions),
        seconds=round(time.perf_counter() - started, 3),
    )


def check_output(registry: Registry, out: Path) -> None:
    """OUT may be written: not the registry or a folder holding it, not a file, and (when it exists)
    empty or a site written before. Everything else in it would be lost: refused, one line."""
    root = registry.root.resolve()
    if out == root or out in root.parents or out.parent == out:
        raise ModelregError(
            f"{out} holds the registry: write the site into a folder of its own (-o public/)"
        )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ModelregError(f"{out} is not a folder: pick a new or empty folder for the site")
    if not out.exists():
        return
    if (out / ".git").exists():
        raise ModelregError(
            f"{out} is a git repository: the site replaces its folder, pick another one"
        )
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise ModelregError(
            f"{out} is not empty and `modelreg site` did not write it (no {MARKER}): its files "
            "would be lost; pick a new or empty folder"
        )


def _versions(registry: Registry) -> list[Version]:
    infos = [v for v in scan(registry) if v.valid]
    blobs = git.read_objects(
        registry.root, [f"{v.commit}:{registry.model_dir(v.model)}/{CARD_FILE}" for v in infos]
    )
    versions = []
    for info, blob in zip(infos, blobs):
        try:
            card = parse_card(blob[1], info.tag) if blob else {}
        except ModelregError as exc:
            card = {"problem": str(exc)}
        versions.append(Version(info, card, blob[1].decode("utf-8", "replace") if blob else ""))
    for before, after in zip(versions, versions[1:]):  # scan sorts by model, then version
        if before.info.model == after.info.model:
            after.against = _against(before, after)
    return versions


def _against(before: Version, after: Version) -> dict[str, Any]:
    """What `modelreg diff` says from the cards alone (no remote): the compatibility verdict and
    metric deltas."""
    from modelreg.compare import compatibility

    verdict = compatibility(before.card, after.card)
    old, new = section(before.card, "metrics"), section(after.card, "metrics")
    metrics = {
        k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    }
    return {
        "tag": before.info.tag,
        "verdict": verdict.word,
        "reasons": [r.to_json() for r in verdict.reasons],
        "metrics": metrics,
    }


def _attach_deploys(
    registry: Registry, versions: list[Version], records: list[target.DeployRecord]
) -> None:
    """Each version's latest deploy per environment, the files it committed, and the diff against
    the version deployed there before it."""
    by_key = {(v.info.model, str(v.info.version)): v for v in versions}
    for record in records:  # newest first
        found = by_key.get((record.model, record.version))
        if found is not None and record.changes_manifests:
            found.deployed.setdefault(record.env, record)
    wanted = [(v, env, r) for v in versions for env, r in v.deployed.items()]
    trees = git.read_objects(
        registry.root,
        [f"{r.commit}:{target.deploy_path(registry, env, r.model)}" for _, env, r in wanted],
    )
    listings = [git.tree_entries(t[1]) if t and t[0] == "tree" else {} for t in trees]
    ids = sorted({oid for listing in listings for oid in listing.values()})
    texts = dict(
        zip(
            ids,
            (
                b[1].decode("utf-8", "replace") if b else ""
                for b in git.read_objects(registry.root, ids)
            ),
        )
    )
    for (version, env, _), listing in zip(wanted, listings):
        version.manifests[env] = {name: texts[oid] for name, oid in sorted(listing.items())}
    last: dict[tuple[str, str], Version] = {}
    for version in versions:  # oldest version first, per model
        for env in version.manifests:
            before = last.get((version.info.model, env))
            if before is not None:
                version.diffs[env] = _diff(before, version, env)
            last[(version.info.model, env)] = version


def _diff(before: Version, after: Version, env: str) -> str:
    lines: list[str] = []
    old, new = before.manifests[env], after.manifests[env]
    for name in sorted(set(old) | set(new)):
        lines += difflib.unified_diff(
            old.get(name, "").splitlines(),
            new.get(name, "").splitlines(),
            f"{before.info.version}/{name}",
            f"{after.info.version}/{name}",
            lineterm="",
            n=1,
        )
    return "\n".join(lines)


def _pages(
    registry: Registry, versions: list[Version], records: list[target.DeployRecord]
) -> dict[str, str]:
    import jinja2

    # cards are free-form (hand-made tags too): a field a card lacks renders empty, not as an error
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelreg.templates", "site"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"
    env.filters["who"] = lambda author: author.split(" <")[0] if author else "-"
    rules = policy.derive(records)
    models: dict[str, list[Version]] = {}
    for version in versions:
        models.setdefault(version.info.model, []).append(version)
    envs = list(registry.config.environments)
    live = {
        (r.env, r.model): r for r in reversed(records) if r.changes_manifests
    }  # oldest first: the newest wins
    analyses = _analyses(registry, records)
    common = {
        "envs": envs,
        "live": live,
        "rules": rules,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    pages = {"index.html": env.get_template("index.html.j2").render(**common, by_model=models)}
    for model, history in models.items():
        plots = _plots(history)
        pages[f"model-{model}.html"] = env.get_template("model.html.j2").render(
            **common,
            model=model,
            versions=list(reversed(history)),
            plots=plots,
            signature=(
                history[-1].card.get("signature")
                if isinstance(history[-1].card.get("signature"), dict)
                else None
            ),
        )
        page = env.get_template("version.html.j2")
        for version in history:
            mine = analyses.get((model, str(version.info.version)), [])
            pages[version.page] = page.render(**common, model=model, v=version, analyses=mine)
    timeline = env.get_template("env.html.j2")
    for name in envs:
        events = [r for r in records if r.env in (name, "")]
        pages[f"env-{name}.html"] = timeline.render(**common, env_name=name, events=events)
    return pages


SHOWN_ANALYSES = 20  # per version, newest first, with their measurements


def _analyses(
    registry: Registry, records: list[target.DeployRecord]
) -> dict[tuple[str, str], list[tuple[target.DeployRecord, dict | None]]]:
    """(model, version) -> its newest analyses and their whole records (one batch read)."""
    chosen: dict[tuple[str, str], list[target.DeployRecord]] = {}
    for record in records:
        if record.action == "analysis":
            mine = chosen.setdefault((record.model, record.version), [])
            if len(mine) < SHOWN_ANALYSES:
                mine.append(record)
    flat = [r for rs in chosen.values() for r in rs]
    full = dict(zip((r.commit for r in flat), target.analysis_records(registry, flat)))
    return {key: [(r, full[r.commit]) for r in rs] for key, rs in chosen.items()}


def _plots(history: list[Version], width: int = 560, height: int = 160) -> list[dict[str, Any]]:
    """Per numeric metric: SVG points across versions (oldest left), with the range for the axis
    labels."""
    names = sorted({k for v in history for k, x in _metrics(v).items() if _number(x)})
    plots = []
    for name in names:
        points = [
            (str(v.info.version), float(_metrics(v)[name]))
            for v in history
            if _number(_metrics(v).get(name))
        ]
        low, high = min(p[1] for p in points), max(p[1] for p in points)
        span = (high - low) or 1.0
        step = (width - 40) / max(1, len(points) - 1)
        coords = [
            (20 + i * step, height - 20 - (value - low) / span * (height - 40))
            for i, (_, value) in enumerate(points)
        ]
        plots.append(
            {
                "name": name,
                "low": low,
                "high": high,
                "width": width,
                "height": height,
                "points": [
                    {"x": round(x, 1), "y": round(y, 1), "version": version, "value": value}
                    for (x, y), (version, value) in zip(coords, points)
                ],
                "polyline": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
            }
        )
    return plots


def _metrics(version: Version) -> dict[str, Any]:
    metrics = version.card.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fingerprint(registry: Registry) -> str:
    """What the site is made of, in one git call: every tag and branch tip (a change means a
    rebuild)."""
    return git.run_git(
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/tags",
        "refs/heads",
        "refs/remotes",
        cwd=registry.root,
    )


def serve_site(
    registry: Registry,
    out: Path,
    host: str,
    port: int,
    interval: float = 2.0,
    on_build: Callable[[SiteResult, str], None] | None = None,
) -> None:
    """Serve OUT over HTTP on HOST:PORT and rebuild it whenever the refs change, until
    interrupted."""
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen = ""
    try:
        while True:
            now = fingerprint(registry)
            if now != seen:
                result = build_site(registry, out)
                seen = now
                if on_build is not None:
                    on_build(result, f"http://{host}:{server.server_address[1]}/")
            time.sleep(interval)
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass
