"""`modelreg fetch`: download a registered artifact by URL, with no git repo, verified.

The URL is the object's address in a DVC remote (`<remote>/files/md5/ab/cdef...`, a `.dir` listing
for a folder), as the manifests carry it. Local paths, `s3://` (endpoint and credentials from the
standard AWS variables, so MinIO and moto work), `gs://`, `azure://` and `http(s)://` go through
fsspec (the filesystems DVC's extras install). md5 per object and SHA-256 overall are checked while
the bytes stream; with a signature (and a trusted key or identity) the OpenSSF model signature is
checked against the SHA-256 of the bytes downloaded, before they are put in place. A mismatch or an
interruption leaves nothing at the output path.

Idempotent, as Kubernetes wants of an init container writing to an emptyDir (it runs again when the
pod sandbox restarts, and the volume keeps its content): bytes already at the output path with the
registered SHA-256 (and signature) are kept without a download; anything else there is replaced,
once the new bytes are verified (a failed fetch leaves it as it was). A remote that cannot be
reached, that times out, that refuses access, and an object it lacks are four different one-line
errors, each naming the URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelreg import artifact_signature
from modelreg.artifact_signature import Trust
from modelreg.digest import Progress, files_of, manifest_digest, sha256_of
from modelreg.errors import ArtifactError
from modelreg.remote import Placed, download, object_store
from modelreg.store import remove

OBJECT_URL = re.compile(
    r"^(?P<base>.+)/files/md5/(?P<prefix>[0-9a-f]{2})/(?P<rest>[0-9a-f]{30}(\.dir)?)$"
)


@dataclass(frozen=True)
class Fetched(Placed):
    url: str
    signed_by: str | None = None
    reused: bool = (
        False  # the bytes were already there (an init container run again): nothing downloaded
    )


def fetch(
    url: str,
    md5: str,
    sha256: str,
    out: Path,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    signature: bytes | None = None,
    trust: Trust | None = None,
    timeout: float | None = None,
) -> Fetched:
    """Download the object URL names (it must be the object MD5) to OUT, verified against SHA256
    and, when given, SIGNATURE made by TRUST."""
    match = OBJECT_URL.match(url.rstrip("/"))
    if match is None or match["prefix"] + match["rest"] != md5:
        raise ArtifactError(
            f"--url {url[:120]} is not the DVC object {md5} (expected "
            f"<remote>/files/md5/{md5[:2]}/{md5[2:]})"
        )
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ArtifactError(f"--sha256 {sha256[:70]!r} is not a SHA-256 (64 hex digits)")
    if (signature is None) != (trust is None):
        raise ArtifactError(
            "a signature check needs both the signature and the trusted key or identity"
        )
    signer: list[str] = []

    def accept(digests: dict[str, str]) -> None:
        if signature is not None and trust is not None:
            names = artifact_signature.signed_names(digests, md5.endswith(".dir"))
            signer.append(artifact_signature.check(signature, out.name, names, trust))
            if log is not None:
                log(f"{url}: artifact signature by {signer[0]} verified")

    if out.exists() or out.is_symlink():
        kept = _already_there(out, md5.endswith(".dir"), sha256)
        if kept is not None:
            accept(kept[2])
            if log is not None:
                log(
                    f"{out}: already holds the registered bytes (sha256 {sha256[:12]}): nothing "
                    "downloaded"
                )
            return Fetched(
                url=url,
                path=str(out),
                size=kept[0],
                files=kept[1],
                sha256=sha256,
                reused=True,
                signed_by=signer[0] if signer else None,
            )
    # into a name beside OUT, then swapped in: a failure leaves whatever was at OUT as it was
    staged = (
        out.with_name(f".{out.name}.modelreg-fetched") if out.exists() or out.is_symlink() else out
    )
    if staged != out:
        remove(staged)  # a killed run's
    try:
        remote = object_store(match["base"], timeout=timeout)
        sha, size, files = download(remote, md5, sha256, url, staged, progress, log, accept)
    except ArtifactError:
        raise
    except Exception as exc:  # OSError, botocore's and fsspec's own kinds: one line, named by cause
        raise ArtifactError(describe_failure(url, exc)) from None
    if staged != out:
        if staged.is_dir() or out.is_dir() and not out.is_symlink():
            remove(out)  # os.replace swaps a file for a file in one step, not folders
        os.replace(staged, out)
        if log is not None:
            log(f"{out}: held other bytes than the registered ones: replaced")
    return Fetched(
        url=url,
        path=str(out),
        size=size,
        files=files,
        sha256=sha,
        signed_by=signer[0] if signer else None,
    )


def _already_there(out: Path, is_dir: bool, sha256: str) -> tuple[int, int, dict[str, str]] | None:
    """(bytes, files, SHA-256 per file) when OUT already holds exactly the registered artifact."""
    if out.is_symlink() or is_dir != out.is_dir():
        return None
    try:
        if not is_dir:
            got = sha256_of(out)
            return (out.stat().st_size, 1, {"": got}) if got == sha256 else None
        names = files_of(out)
        digests = {name: sha256_of(out / name) for name in names}
        if manifest_digest(digests) != sha256:
            return None
        return sum((out / name).stat().st_size for name in names), len(names), digests
    except (OSError, ArtifactError):
        return None


def describe_failure(url: str, exc: BaseException) -> str:
    """One line that says which of the ways a fetch fails this was: the remote cannot be reached, it
    timed out, it refused access, or it lacks the object (anything else: its own words)."""
    text = " ".join(str(exc).split())[:200]
    kind = type(exc).__name__
    lowered = f"{kind} {text}".lower()
    if isinstance(exc, TimeoutError) or "timeout" in lowered or "timed out" in lowered:
        return (
            f"{url}: the storage did not answer in time ({kind}): check the endpoint and the "
            "network"
        )
    if isinstance(exc, PermissionError) or any(
        w in lowered
        for w in (
            "403",
            "accessdenied",
            "access denied",
            "forbidden",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
        )
    ):
        return (
            f"{url}: access refused by the storage ({text}): check the credentials (the "
            "modelreg-storage Secret)"
        )
    if (
        isinstance(exc, FileNotFoundError)
        or "nosuchkey" in lowered
        or "404" in lowered
        or "not found" in lowered
    ):
        return f"{url}: the object is not in the storage (was it pushed?)"
    if isinstance(exc, ConnectionError) or any(
        w in lowered for w in ("connect", "name or service", "resolve", "unreachable", "refused")
    ):
        where = "the endpoint (AWS_ENDPOINT_URL)" if url.startswith("s3://") else "the URL"
        return f"{url}: cannot connect to the storage ({text}): check {where} and the network"
    return f"{url}: {kind}: {text}"
