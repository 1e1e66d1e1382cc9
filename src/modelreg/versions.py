"""Reading versions: one `for-each-ref` for the tags (what they say comes from `tag_cache`), one
`cat-file --batch` for the trees of the tags register did not make."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from modelreg import git
from modelreg.card import CARD_FILE, parse_card, section
from modelreg.errors import RefError
from modelreg.handle import Registry
from modelreg.refs import Ref, Version, parse_ref, parse_tag
from modelreg.store import Pointer, parse_pointer
from modelreg.tag_cache import list_tags


@dataclass(frozen=True)
class VersionInfo:
    """A version tag, whoever made it. `problem` says why an invalid one is invalid."""

    model: str
    version: Version
    tag: str
    object: str  # what the tag ref names: the tag object, or the commit of a lightweight tag
    commit: str
    timestamp: int
    author: str
    message: str
    annotated: bool
    problem: str | None
    sha256: str | None = None  # from register's tag message; None for hand-made tags

    @property
    def valid(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": str(self.version),
            "tag": self.tag,
            "object": self.object,
            "commit": self.commit,
            "timestamp": self.timestamp,
            "author": self.author,
            "message": self.message,
            "annotated": self.annotated,
            "valid": self.valid,
            "problem": self.problem,
        }


def tag_patterns(registry: Registry, model: str | None) -> tuple[str, ...]:
    """for-each-ref patterns that cover a model's tags (by prefix), or every tag."""
    if model is None:
        return ("refs/tags",)
    patterns = (f"refs/tags/{model}@*",)
    if model == registry.config.default_model:
        patterns += ("refs/tags/v*",)
    return patterns


def scan(registry: Registry, model: str | None = None) -> list[VersionInfo]:
    """Every version tag (of one model, or all), oldest version first, validity checked in one
    batch."""
    default = registry.config.default_model
    found = []
    for record in list_tags(registry.root, tag_patterns(registry, model)):
        ref = parse_tag(record.name, default)
        if ref is None or (model is not None and ref.model != model):
            continue
        found.append((ref, record))
    # Tags `register` made are valid by construction (one commit holds card and pointer); only the
    # others (made by hand) have their trees checked, in one batch. A message can be imitated: this
    # only spares the tree check of versions that are not chosen; whatever `latest` picks has its
    # tree checked (`latest_valid`).
    unchecked = [i for i, (_, rec) in enumerate(found) if not rec.by_register]
    trees = dict(
        zip(
            unchecked,
            git.read_objects(
                registry.root,
                [
                    f"{found[i][1].commit}:{registry.model_dir(found[i][0].model)}"
                    for i in unchecked
                ],
            ),
        )
    )
    versions = []
    for i, (ref, record) in enumerate(found):
        assert ref.version is not None
        versions.append(
            VersionInfo(
                model=ref.model,
                version=ref.version,
                tag=record.name,
                object=record.object,
                commit=record.commit,
                timestamp=record.timestamp,
                author=record.creator,
                message=record.subject,
                annotated=record.annotated,
                problem=_problem(registry, ref.model, trees[i]) if i in trees else None,
                sha256=record.sha256,
            )
        )
    versions.sort(key=lambda v: (v.model, v.version.key, v.tag))
    return versions


def latest_valid(registry: Registry, versions: list[VersionInfo]) -> VersionInfo | None:
    """The newest valid version, its tree checked even when its message says register made it (a
    hand-made tag can imitate the message); versions found invalid are skipped."""
    if not versions:
        return None
    return latest_valid_of(registry, {versions[0].model: versions})[versions[0].model]


def latest_valid_of(
    registry: Registry, by_model: dict[str, list[VersionInfo]]
) -> dict[str, VersionInfo | None]:
    """`latest_valid` of many models, one `cat-file` batch per round (one round unless a tag
    lies)."""
    candidates = {m: [v for v in vs if v.valid] for m, vs in by_model.items()}
    chosen: dict[str, VersionInfo | None] = dict.fromkeys(by_model)
    while candidates:
        tops = {m: vs[-1] for m, vs in candidates.items() if vs}
        trees = git.read_objects(
            registry.root, [f"{v.commit}:{registry.model_dir(m)}" for m, v in tops.items()]
        )
        candidates = {}
        for (model, info), tree in zip(tops.items(), trees):
            problem = _problem(registry, model, tree)
            if problem is None:
                chosen[model] = info
            else:
                by_model[model][by_model[model].index(info)] = dataclasses.replace(
                    info, problem=problem
                )
                candidates[model] = [v for v in by_model[model] if v.valid]
    return chosen


def _problem(registry: Registry, model: str, tree: tuple[str, bytes] | None) -> str | None:
    where = registry.model_dir(model)
    if tree is None or tree[0] != "tree":
        return f"the tagged commit has no {where}/"
    names = git.tree_names(tree[1])
    if CARD_FILE not in names:
        return f"the tagged commit has no {where}/{CARD_FILE}"
    if not any(n.endswith(".dvc") for n in names):
        return f"the tagged commit has no DVC pointer (.dvc file) in {where}/"
    return None


@dataclass(frozen=True)
class Resolved:
    """A version a reference resolved to, with its card and pointer read from the tag's tree."""

    info: VersionInfo
    card: dict[str, Any]
    pointer: Pointer
    versions: list[VersionInfo]


def resolve(registry: Registry, text: str) -> Resolved:
    """`NAME@VERSION`, `NAME` (latest valid) or a bare `VERSION` (default model) to a version and
    its card."""
    ref = parse_ref(text, registry.config.default_model)
    versions = scan(registry, ref.model)
    if ref.version is None and versions:
        info = latest_valid(registry, versions)
        if info is None:
            raise RefError(f"model {ref.model!r} has no valid version")
    else:
        info = pick(versions, ref)
        if info.valid:  # its message may claim register made it: look at the tree of the one chosen
            problem = _problem(
                registry,
                info.model,
                git.read_objects(
                    registry.root, [f"{info.commit}:{registry.model_dir(info.model)}"]
                )[0],
            )
            info = dataclasses.replace(info, problem=problem) if problem else info
    if not info.valid:
        raise RefError(f"{info.tag} is not a valid version: {info.problem}")
    return read_version(registry, info, versions)


def pick(versions: list[VersionInfo], ref: Ref) -> VersionInfo:
    if not versions:
        raise RefError(
            f"no model named {ref.model!r} in this clone of the registry (`git fetch --tags` if "
            "someone registered it elsewhere)"
        )
    if ref.version is None:
        valid = [v for v in versions if v.valid]
        if not valid:
            raise RefError(f"model {ref.model!r} has no valid version")
        return valid[-1]
    matches = [v for v in versions if v.version == ref.version]
    if not matches:
        latest = max(versions, key=lambda v: v.version.key).version
        raise RefError(
            f"{ref.model}@{ref.version} is not registered here (latest: {latest}); if it was "
            "registered in another clone, `git fetch --tags` first"
        )
    return matches[0]


def read_version(registry: Registry, info: VersionInfo, versions: list[VersionInfo]) -> Resolved:
    where = registry.model_dir(info.model)
    card_blob = git.read_file(registry.root, info.commit, f"{where}/{CARD_FILE}")
    card = parse_card(card_blob or b"", f"{info.tag}:{where}/{CARD_FILE}")
    artifact = (
        section(card, "artifact").get("path") if isinstance(card.get("artifact"), dict) else None
    )
    pointer_path = f"{where}/{artifact}.dvc" if artifact else None
    blob = git.read_file(registry.root, info.commit, pointer_path) if pointer_path else None
    if blob is None:
        pointer_path = _find_pointer(registry, info.commit, where)
        blob = git.read_file(registry.root, info.commit, pointer_path) if pointer_path else None
    if blob is None:
        raise RefError(f"{info.tag} is not a valid version: no DVC pointer in {where}/")
    return Resolved(
        info=info,
        card=card,
        pointer=parse_pointer(blob, f"{info.tag}:{pointer_path}"),
        versions=versions,
    )


def _find_pointer(registry: Registry, commit: str, where: str) -> str | None:
    names = git.ls_tree(registry.root, commit, where)
    pointers = sorted(n for n in names if n.endswith(".dvc") and "/" not in n)
    return f"{where}/{pointers[0]}" if pointers else None
