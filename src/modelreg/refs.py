"""Model names, versions and tags: the grammar is defined here and nowhere else.

A registration tag is `<model>@<version>` (GTO's grammar); in a registry with a
`default_model`, a bare `<version>` tag names that model. Versions are `vN`
(integer scheme) or `vMAJOR.MINOR.PATCH` (semver scheme) and order numerically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelreg.errors import RefError

NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 53
# each number has at most 9 digits: versions go into Kubernetes labels (63 characters at most)
VERSION_RE = re.compile(r"v(0|[1-9][0-9]{0,8})(?:\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8}))?")
SCHEMES = ("integer", "semver")


@dataclass(frozen=True, order=True)
class Version:
    """A parsed version; `parts` has one number (vN) or three (semver)."""

    key: tuple[int, int, int]
    parts: tuple[int, ...]

    def __str__(self) -> str:
        return "v" + ".".join(str(p) for p in self.parts)

    @property
    def scheme(self) -> str:
        return "integer" if len(self.parts) == 1 else "semver"


@dataclass(frozen=True)
class Ref:
    """A reference as a user wrote it: a model, and a version or None for the latest."""

    model: str
    version: Version | None

    @property
    def tag(self) -> str | None:
        return None if self.version is None else format_tag(self.model, self.version)


def check_name(name: str) -> str:
    """Return `name` if it is a valid model name (a DNS-1123 label), else raise."""
    if len(name) > NAME_MAX:
        raise RefError(
            f"invalid model name {name!r}: at most {NAME_MAX} characters (it becomes part of "
            "Kubernetes names)"
        )
    if not NAME_RE.fullmatch(name):
        raise RefError(
            f"invalid model name {name!r}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return name


def parse_version(text: str) -> Version:
    """Parse `v3` or `v1.2.3`; raise RefError for anything else."""
    match = VERSION_RE.fullmatch(text)
    if not match:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise RefError(
            f"invalid version {shown!r}: expected v<N> (v3) or v<MAJOR>.<MINOR>.<PATCH> (v1.2.3), "
            "numbers of at most 9 digits"
        )
    parts = tuple(int(p) for p in match.groups() if p is not None)
    return _version(parts)


def format_tag(model: str, version: Version) -> str:
    return f"{model}@{version}"


TAG_RE = re.compile(r"(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)@)?" + VERSION_RE.pattern)


def parse_tag(tag: str, default_model: str | None) -> Ref | None:
    """The (model, version) a tag names, or None when the tag is not a version tag.
    One regex match: this runs once per tag in the repository."""
    match = TAG_RE.fullmatch(tag)
    if match is None:
        return None
    model, *numbers = match.groups()
    model = model or default_model
    if model is None or len(model) > NAME_MAX:
        return None
    parts = tuple(int(n) for n in numbers if n is not None)
    return Ref(model, _version(parts))


def _version(parts: tuple[int, ...]) -> Version:
    """vN sorts as N.0.0 beside semver."""
    padded = parts + (0, 0)
    return Version(key=(padded[0], padded[1], padded[2]), parts=parts)


def group_tags(lines: Iterable[str], default_model: str | None) -> dict[str, list[str]]:
    """LINES (each a tag name, then anything after a NUL: for-each-ref output) grouped by the model
    their tag names claim, versions unchecked: the part before `@`, or DEFAULT_MODEL for a bare
    `v...` tag; tags of no model (`release-1`) are left out. One loop: 100,000 tags per `list`."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        name = line.partition("\0")[0]
        model, at, _ = name.partition("@")
        if not at:
            if default_model is None or not name.startswith("v"):
                continue
            model = default_model
        groups.setdefault(model, []).append(line)
    return groups


def qualify(ref: str, model: str) -> str:
    """REF as `MODEL@VERSION`: a bare version (`v3`) is taken as MODEL's."""
    return ref if "@" in ref else format_tag(model, parse_version(ref))


def parse_ref(text: str, default_model: str | None) -> Ref:
    """Parse what a user typed: `NAME@VERSION`, `NAME` (latest) or a bare `VERSION`."""
    if "@" in text:
        model, _, version = text.partition("@")
        return Ref(check_name(model), parse_version(version))
    if text.startswith("v") and text[1:2].isdigit():
        if default_model is None:
            raise RefError(
                f"{text!r} names no model: write MODEL@{text}, or set default_model in "
                "modelreg.yaml"
            )
        return Ref(default_model, parse_version(text))
    return Ref(check_name(text), None)


def next_version(latest: Version | None, scheme: str, bump: str | None = None) -> Version:
    """The version `register` picks after `latest`."""
    if scheme == "integer":
        if bump:
            raise RefError(
                "--bump needs `versions: semver` in modelreg.yaml; integer versions only count up"
            )
        n = latest.key[0] + 1 if latest else 1
        return parse_version(f"v{n}")
    if latest is None:
        return parse_version("v1.0.0")
    major, minor, patch = latest.key
    if bump == "major":
        return parse_version(f"v{major + 1}.0.0")
    if bump == "minor":
        return parse_version(f"v{major}.{minor + 1}.0")
    return parse_version(f"v{major}.{minor}.{patch + 1}")
