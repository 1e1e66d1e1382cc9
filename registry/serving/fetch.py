"""`modelreg fetch`: download a registered artifact by URL, with no git repo, verified.

The URL is the object's address in a DVC remote (`<remote>/files/md5/ab/cdef...`, a `.dir` listing
for a folder), as the manifests carry it. Local paths, `s3://` (endpoint and credentials from the
standard AWS variables, so MinIO and moto work), `gs://`, `azure://` and `http(s)://` go through fsspec
(the filesystems DVC's extras install). md5 per object and SHA-256 overall are checked while the bytes
stream; with a signature (and a trusted key or identity) the OpenSSF model signature is checked
against the SHA-256 of the bytes downloaded, before they are put in place. A mismatch or an
interruption leaves nothing at the output path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modelreg import artifact_signature
from modelreg.artifact_signature import Trust
from modelreg.digest import Progress
from modelreg.errors import ArtifactError
from modelreg.remote import download, object_store

OBJECT_URL = re.compile(r"^(?P<base>.+)/files/md5/(?P<prefix>[0-9a-f]{2})/(?P<rest>[0-9a-f]{30}(\.dir)?)$")


@dataclass(frozen=True)
class Fetched:
    url: str
    path: str
    size: int
    files: int
    sha256: str
    signed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fetch(url: str, md5: str, sha256: str, out: Path, progress: Progress | None = None,
          log: Callable[[str], None] | None = None, signature: bytes | None = None,
          trust: Trust | None = None) -> Fetched:
    """Download the object URL names (it must be the object MD5) to OUT, verified against SHA256 and,
    when given, SIGNATURE made by TRUST."""
    match = OBJECT_URL.match(url.rstrip("/"))
    if match is None or match["prefix"] + match["rest"] != md5:
        raise ArtifactError(f"--url {url[:120]} is not the DVC object {md5} (expected <remote>/files/md5/{md5[:2]}/{md5[2:]})")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ArtifactError(f"--sha256 {sha256[:70]!r} is not a SHA-256 (64 hex digits)")
    if (signature is None) != (trust is None):
        raise ArtifactError("a signature check needs both the signature and the trusted key or identity")
    signer: list[str] = []

    def accept(digests: dict[str, str]) -> None:
        if signature is not None and trust is not None:
            names = artifact_signature.signed_names(digests, md5.endswith(".dir"))
            signer.append(artifact_signature.check(signature, out.name, names, trust))
            if log is not None:
                log(f"{url}: artifact signature by {signer[0]} verified")

    remote = object_store(match["base"])
    try:
        sha, size, files = download(remote, md5, sha256, url, out, progress, log, accept)
    except (OSError, PermissionError) as exc:
        raise ArtifactError(f"{url}: {exc}") from None
    return Fetched(url=url, path=str(out), size=size, files=files, sha256=sha, signed_by=signer[0] if signer else None)
