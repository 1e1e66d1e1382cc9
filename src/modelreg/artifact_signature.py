"""Signed artifacts: an OpenSSF model signature (the `model-signing` package, extra `sign`) over the
artifact's SHA-256 digests, committed beside the card as `models/<name>/model.sig`.

The signature is model-signing's own format (a Sigstore bundle over an in-toto statement listing
each file's SHA-256, `files` serialization), so `model_signing verify key ARTIFACT --signature
model.sig
--public_key KEY.pub` accepts it. modelreg signs and checks digests it already has (computed while
the bytes were copied into DVC's cache, or streamed from the remote, or downloaded in the pod):
signing costs no extra read of the artifact, and a check compares the signed digests with those of
the bytes actually read. Keys: an elliptic-curve private key in PEM (`openssl ecparam -name
prime256v1 -genkey
-noout -out release.key`), or keyless Sigstore with an OIDC identity token (GitHub Actions'
`id-token: write`). A key is named by the SHA-256 of its public key in PEM, as model-signing's
bundle hint names it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from modelreg.errors import ArtifactError, ModelregError

if TYPE_CHECKING:
    from modelreg.config import Environment
    from modelreg.handle import Registry
    from modelreg.versions import VersionInfo

SIGNATURE_FILE = "model.sig"
MAX_SIGNATURE_BYTES = 256 * 1024
KEY_PASSWORD_ENV = "MODELREG_SIGNING_KEY_PASSWORD"
SINGLE_FILE = "."  # model-signing's name for the one file of a single-file model


@dataclass(frozen=True)
class Trust:
    """Who an environment (or a pod) accepts as the signer: a public key (PEM), or a Sigstore
    identity."""

    public_key: bytes | None = None
    identity: str | None = None
    issuer: str | None = None

    def describe(self) -> str:
        if self.public_key is not None:
            return f"key sha256:{key_id(self.public_key)[:16]}"
        return f"{self.identity} (issuer {self.issuer})"


def trust_of(registry: Registry, env: Environment) -> Trust:
    """Whom ENV trusts, its key read as policy is (the default branch, see settings.py)."""
    if env.artifact_key is not None:
        pem = registry.policy_file(env.artifact_key)
        if pem is None:
            raise ModelregError(
                f"environments.{env.name}.artifact_key: {env.artifact_key} is not in "
                f"{registry.policy.ref} (commit the public key there)"
            )
        key_id(pem)
        return Trust(public_key=pem)
    return Trust(identity=env.artifact_identity, issuer=env.artifact_issuer)


def trusted(registry: Registry) -> list[Trust]:
    """Whom the environments of modelreg.yaml trust (keys as policy has them), each once; keys
    not found are skipped."""
    found: list[Trust] = []
    for env in registry.config.environments.values():
        if env.artifact_key is None and env.artifact_identity is None:
            continue
        try:
            trust = trust_of(registry, env)
        except ModelregError:
            continue
        if trust not in found:
            found.append(trust)
    return found


def signature_of(registry: Registry, info: VersionInfo) -> bytes | None:
    """The artifact signature committed with a version, if any."""
    from modelreg import git

    return git.read_file(
        registry.root, info.commit, f"{registry.model_dir(info.model)}/{SIGNATURE_FILE}"
    )


def key_id(public_pem: bytes) -> str:
    """The SHA-256 of a public key in PEM (SubjectPublicKeyInfo), as model-signing's bundles hint
    it."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as exc:
        raise ModelregError(f"not a PEM public key: {exc}") from None
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def signed_names(digests: dict[str, str], is_dir: bool) -> dict[str, str]:
    """Per-file SHA-256 keyed as model-signing names them: relative paths, or "." for a single
    file."""
    if is_dir:
        return dict(digests)
    (only,) = digests.values()
    return {SINGLE_FILE: only}


def sign(
    name: str, digests: dict[str, str], key: Path | None, identity_token: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """Sign an artifact named NAME whose files have DIGESTS (from `signed_names`): with the EC
    private key KEY, or keyless through Sigstore with IDENTITY_TOKEN (or the ambient one in CI).
    Returns the signature bundle and what the card records of the signer."""
    signing, _ = _library()
    config = signing.Config().set_hashing_config(_Known(_manifest(name, digests)))
    if key is not None:
        password = os.environ.get(KEY_PASSWORD_ENV)
        try:
            config.use_elliptic_key_signer(
                private_key=key, password=password.encode() if password else None
            )
        except (ValueError, TypeError, OSError) as exc:
            raise ModelregError(
                f"--key {key}: cannot use it to sign ({_first_line(exc)}); expected an "
                f"elliptic-curve private key in PEM (its password in {KEY_PASSWORD_ENV})"
            ) from None
    else:
        if not identity_token and not os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
            raise ModelregError(
                "--sign-artifact needs --key KEY, or an OIDC identity token for keyless Sigstore "
                "signing (SIGSTORE_ID_TOKEN, or GitHub Actions with `permissions: id-token: write`)"
            )
        config.use_sigstore_signer(
            identity_token=identity_token, use_ambient_credentials=not identity_token
        )
    with tempfile.TemporaryDirectory(prefix="modelreg-sig-") as tmp:
        out = Path(tmp) / SIGNATURE_FILE
        try:
            config.sign(Path(name), out)
        except (
            Exception
        ) as exc:  # model-signing and sigstore raise many kinds; the CLI prints one line
            raise ModelregError(f"signing the artifact failed: {_first_line(exc)}") from None
        bundle = out.read_bytes()
    return bundle, signer_of(bundle)


def signer_of(bundle: bytes) -> dict[str, str]:
    """What signed a bundle, as the card records it: {"key": <key id>} or {"identity", "issuer"}."""
    data = _bundle(bundle)
    material = data.get("verificationMaterial") or {}
    hint = (material.get("publicKey") or {}).get("hint")
    if hint:
        return {"key": str(hint)}
    return {"sigstore": "certificate", **_certificate_identity(material)}


def check(bundle: bytes, name: str, digests: dict[str, str], trust: Trust) -> str:
    """Verify BUNDLE with TRUST and that it signs exactly DIGESTS (from `signed_names`); return who
    signed. Raises ArtifactError naming what differs."""
    _, verifying = _library()
    _bundle(bundle)
    config = verifying.Config().set_hashing_config(_Known(_manifest(name, digests)))
    with tempfile.TemporaryDirectory(prefix="modelreg-sig-") as tmp:
        signature = Path(tmp) / SIGNATURE_FILE
        signature.write_bytes(bundle)
        try:
            if trust.public_key is not None:
                public = Path(tmp) / "trusted.pub"
                public.write_bytes(trust.public_key)
                config.use_elliptic_key_verifier(public_key=public)
            elif trust.identity and trust.issuer:
                config.use_sigstore_verifier(identity=trust.identity, oidc_issuer=trust.issuer)
            else:
                raise ModelregError(
                    "no trusted key or identity to check the artifact's signature against"
                )
        except (ValueError, TypeError) as exc:
            raise ModelregError(f"the trusted key cannot be used: {_first_line(exc)}") from None
        try:
            config.verify(Path(name), signature)
        except (
            Exception
        ) as exc:  # a forged, foreign or mismatched signature, in model-signing's words
            raise ArtifactError(_refusal(exc, bundle, digests, trust)) from None
    return trust.describe()


def _refusal(exc: Exception, bundle: bytes, digests: dict[str, str], trust: Trust) -> str:
    text = _first_line(exc)
    if not text.startswith("Signature mismatch"):
        return f"the artifact signature is not valid for {trust.describe()}: {text}"
    signed = _signed_digests(bundle)
    differ = [
        f"{n}: signed {signed[n][:12]}, bytes {digests[n][:12]}"
        for n in sorted(digests)
        if n in signed and signed[n] != digests[n]
    ]
    extra = sorted(set(digests) - set(signed))
    lacking = sorted(set(signed) - set(digests))
    parts = (
        differ
        + ([f"not signed: {', '.join(extra[:5])}"] if extra else [])
        + ([f"signed but absent: {', '.join(lacking[:5])}"] if lacking else [])
    )
    return "the artifact's bytes do not match its signature (" + "; ".join(parts[:5]) + ")"


def _signed_digests(bundle: bytes) -> dict[str, str]:
    """The digests a bundle's statement lists (read only after its signature checked)."""
    payload = json.loads(base64.b64decode(_bundle(bundle)["dsseEnvelope"]["payload"]))
    return {r["name"]: r["digest"] for r in payload["predicate"]["resources"]}


def _bundle(bundle: bytes) -> dict[str, Any]:
    if len(bundle) > MAX_SIGNATURE_BYTES:
        raise ArtifactError(f"{SIGNATURE_FILE} is {len(bundle)} bytes: not a model signature")
    try:
        data = json.loads(bundle)
        if not isinstance(data, dict) or "dsseEnvelope" not in data:
            raise ValueError("no DSSE envelope")
    except ValueError as exc:
        raise ArtifactError(
            f"{SIGNATURE_FILE} is not a model-signing bundle ({_first_line(exc)})"
        ) from None
    return data


def _certificate_identity(material: dict[str, Any]) -> dict[str, str]:
    raw = (material.get("certificate") or {}).get("rawBytes")
    if not raw:
        return {}
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(raw))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [str(n.value) for n in names]
    except (ValueError, x509.ExtensionNotFound):
        return {}
    return {"identity": found[0]} if found else {}


def _manifest(name: str, digests: dict[str, str]) -> Any:
    from model_signing import manifest
    from model_signing._hashing.hashing import Digest  # pinned model-signing==1.1.1 (extra `sign`)

    serialization = manifest.SerializationType.from_args(
        {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
    )
    items = [
        manifest.FileManifestItem(
            path=PurePosixPath(rel), digest=Digest("sha256", bytes.fromhex(sha))
        )
        for rel, sha in sorted(digests.items())
    ]
    return manifest.Manifest(name, items, serialization)


class _Known:
    """A model-signing hashing configuration that answers with digests modelreg already computed."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest

    def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
        return self.manifest

    def add_ignored_paths(self, *, model_path: Any, paths: Any) -> None:
        return None


def _library() -> tuple[Any, Any]:
    try:
        from model_signing import signing, verifying
    except ImportError:
        raise ModelregError(
            "artifact signatures need the `sign` extra: pip install 'modelreg[sign]'"
        ) from None
    return signing, verifying


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
