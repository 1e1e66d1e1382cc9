"""The model server image the manifests name: `serving.image` when modelreg.yaml sets one, else
modelreg's own image for the installed version, by digest when the package was built by a release
(`release.json`, written by the release workflow after it pushed the image) and by tag in a
development install, which `render` and `deploy` then say once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from modelreg.config import Config

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
RELEASE_FILE = "release.json"


@dataclass(frozen=True)
class Image:
    name: str  # what the manifests say: repository:tag[@sha256:...]
    pinned: bool  # named by digest
    note: str = ""  # why not, for a development install


def modelreg_version() -> str:
    """The installed modelreg's version ("dev" when run from a tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version  # 20-30 ms: only when asked

    try:
        return version("modelreg")
    except PackageNotFoundError:
        return "dev"


def released() -> tuple[str, str]:
    """(repository, digest) as the release that built this package recorded them; digest "" when
    none."""
    data = json.loads(resources.files("modelreg").joinpath(RELEASE_FILE).read_text())
    return str(data["image"]), str(data.get("digest") or "")


def server_image(config: Config) -> Image:
    """The image the templates run, and whether it is pinned by digest."""
    if config.serving.image:
        return Image(config.serving.image, DIGEST.search(config.serving.image) is not None)
    repository, digest = released()
    tagged = f"{repository}:{modelreg_version()}"
    if digest:
        return Image(f"{tagged}@{digest}", True)
    return Image(
        tagged,
        False,
        f"NOTE: the manifests name {tagged} by its tag: this modelreg is a development "
        "install (no image digest shipped with it); a release pins the image by digest, "
        "or set serving.image to an image@sha256:...",
    )
