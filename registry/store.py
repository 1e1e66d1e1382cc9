"""DVC: tracking, pushing and locating artifacts. dvc is imported only inside the functions that need it."""
from __future__ import annotations

import contextlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from modelreg.errors import StoreError


@dataclass(frozen=True)
class Pointer:
    """What a `.dvc` file says about its artifact."""

    path: str
    md5: str
    size: int
    nfiles: int | None

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


def parse_pointer(text: bytes | str, where: str) -> Pointer:
    try:
        data = yaml.safe_load(text)
        out = data["outs"][0]
        return Pointer(path=str(out["path"]), md5=str(out["md5"]), size=int(out.get("size", 0)),
                       nfiles=out.get("nfiles"))
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        raise StoreError(f"{where} is not a valid DVC pointer (expected outs: [{{md5, size, path}}])") from None


def parse_remote_url(dvc_config: bytes | str | None, remote: str | None = None) -> str | None:
    """The URL of the default (or named) remote in the text of `.dvc/config`, without importing dvc."""
    if not dvc_config:
        return None
    text = dvc_config.decode() if isinstance(dvc_config, bytes) else dvc_config
    section = None
    default = None
    urls: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        header = re.match(r"^\[\s*'?(core|remote\s+\"([^\"]+)\")'?\s*\]$", line)
        if header:
            section = "core" if header.group(1) == "core" else header.group(2)
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if section == "core" and key == "remote":
            default = value
        elif section not in (None, "core") and key == "url":
            urls[section] = value
    name = remote or default
    return urls.get(name) if name else None


def object_url(remote_url: str, md5: str) -> str:
    """The content-addressed URL of an object in a DVC 3 remote."""
    return f"{remote_url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"


def one_line(exc: BaseException) -> str:
    """DVC's multi-line messages folded into the one line the CLI prints."""
    return " ".join(str(exc).split())


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator["object"]:
    """An in-process DVC repo with DVC's own logging kept quiet."""
    logging.getLogger("dvc").setLevel(logging.ERROR)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except DvcException as exc:
        raise StoreError(f"DVC could not open {root}: {one_line(exc)}") from None
    try:
        yield repo
    finally:
        repo.close()


def init_dvc(root: Path) -> bool:
    """`dvc init` when `.dvc/` is missing; True when it did."""
    if (root / ".dvc").is_dir():
        return False
    from dvc.repo import Repo

    with contextlib.redirect_stdout(io.StringIO()):
        Repo.init(str(root))
    return True


def set_remote(root: Path, url: str, name: str = "storage", endpoint_url: str | None = None) -> None:
    """Add (or replace) the default DVC remote in `.dvc/config`; credentials never go there."""
    from dvc.config import ConfigError as DvcConfigError

    with open_repo(root) as repo:
        try:
            with repo.config.edit("repo") as conf:
                conf["remote"][name] = {"url": url, **({"endpointurl": endpoint_url} if endpoint_url else {})}
                conf["core"]["remote"] = name
        except DvcConfigError as exc:
            raise StoreError(f"DVC refused remote {url!r}: {one_line(exc)}") from None


def track(root: Path, artifact: Path) -> Pointer:
    """`dvc add` the artifact in process; return what its `.dvc` file now records."""
    from dvc.exceptions import DvcException

    with open_repo(root) as repo:
        try:
            repo.add(str(artifact))
        except (DvcException, OSError) as exc:
            raise StoreError(f"dvc add {artifact.name} failed: {one_line(exc)}") from None
    dvcfile = artifact.with_name(artifact.name + ".dvc")
    return parse_pointer(dvcfile.read_bytes(), str(dvcfile))


def has_remote(root: Path) -> bool:
    text = (root / ".dvc" / "config").read_bytes() if (root / ".dvc" / "config").exists() else None
    local = root / ".dvc" / "config.local"
    return bool(parse_remote_url(text) or (local.exists() and parse_remote_url(local.read_bytes())))


def push(root: Path, dvcfile: Path) -> int:
    """Push the artifact named by `dvcfile` to the default remote; return how many objects were sent."""
    from dvc.exceptions import DvcException

    with open_repo(root) as repo:
        try:
            return repo.push(targets=[str(dvcfile)])
        except (DvcException, OSError) as exc:
            raise StoreError(f"dvc push to the remote failed: {one_line(exc)}") from None
