"""Manifests from Jinja templates, read from the tag's tree, rendered in a sandbox and checked.

What the version is (card, `.dvc` pointer, templates/, .dvc/config's remote) comes from the commit
the tag names; the settings (modelreg.yaml: environments, serving) are policy, read from the default
branch (settings.py), so an environment added later applies to every version. When policy requires
a signed artifact in the environment, the signature and the trusted key go into the manifests for
the pod to check.
"""

from __future__ import annotations

import functools
import json
import traceback
from dataclasses import dataclass
from typing import Any

import jinja2

from modelreg import git, safe_yaml, store
from modelreg.card import dump_card, section
from modelreg.config import Config
from modelreg.errors import RenderError
from modelreg.handle import Registry
from modelreg.image import server_image
from modelreg.sandbox import BoundedSandbox
from modelreg.versions import Resolved

TEMPLATES_DIR = "templates"
OWNED_DIR = "cluster"  # in modelreg.templates: the objects modelreg renders itself, for any version
CANARY_DIR = "canary"  # below the deploy path: the candidate's manifests while a canary runs
ROUTE_FILE = "route.yaml"
CRD_SCHEMAS = {
    "InferenceService": "schema.inferenceservice.json",
    "ClusterServingRuntime": "schema.clusterservingruntime.json",
}


@dataclass(frozen=True)
class Rendered:
    """Manifests by file name, as bytes, and the objects they hold."""

    files: dict[str, bytes]
    objects: list[dict[str, Any]]
    config: Config
    warnings: tuple[str, ...] = ()  # e.g. the image named by tag (a development install)


@dataclass(frozen=True)
class Track:
    """A canary's candidate, rendered beside the stable version: its objects are named
    `<model>-<env>-canary`, run `replicas` pods and take `weight` percent of the traffic."""

    weight: int
    replicas: int


def quote(value: Any) -> str:
    """A YAML scalar that stays one scalar whatever the value holds (`: `, newlines, `{{`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def read_tree_inputs(registry: Registry, commit: str) -> tuple[dict[str, str], str | None]:
    """The templates and the DVC remote URL, as they are in `commit` (what the version is)."""
    names = [
        n
        for n in git.ls_tree(registry.root, commit, TEMPLATES_DIR)
        if n.endswith(".j2") and "/" not in n
    ]
    specs = [f"{commit}:.dvc/config"] + [f"{commit}:{TEMPLATES_DIR}/{n}" for n in names]
    blobs = git.read_objects(registry.root, specs)
    templates = {n: b[1].decode() for n, b in zip(names, blobs[1:]) if b is not None}
    if not templates:
        raise RenderError(
            f"commit {commit[:8]} has no {TEMPLATES_DIR}/*.j2 (run `modelreg init` and commit them)"
        )
    remote_url = store.parse_remote_url(blobs[0][1]) if blobs[0] else None
    return templates, remote_url


def build_context(
    resolved: Resolved,
    config: Config,
    env_name: str,
    remote_url: str | None,
    signature: bytes | None = None,
    trust: Any = None,
    track: Track | None = None,
) -> dict[str, Any]:
    """What the templates see. SIGNATURE and TRUST (an artifact_signature.Trust) are given when the
    environment requires a signed artifact: the pod checks it again against them."""
    info, pointer = resolved.info, resolved.pointer
    env = config.env(env_name)
    if remote_url is None:
        raise RenderError(
            f"{info.tag} has no DVC remote in .dvc/config: the manifests need the artifact's URL "
            "(dvc remote add -d storage URL, committed)"
        )
    artifact_card = section(resolved.card, "artifact")
    name = f"{info.model}-{env_name}" + ("-canary" if track else "")
    settings = dict(env.__dict__)
    if track is not None:
        settings.update(replicas=track.replicas, min_replicas=track.replicas)
    return {
        "model": info.model,
        "version": str(info.version),
        "tag": info.tag,
        "commit": info.commit,
        "name": name,
        "card": resolved.card,
        "env": settings,
        "serving": config.serving.__dict__,
        "artifact": {
            "path": pointer.path,
            "md5": pointer.md5,
            "size": pointer.size,
            "sha256": artifact_card.get("sha256", ""),
            "url": store.object_url(env.storage_url or remote_url, pointer.md5),
            "is_dir": pointer.is_dir,
            "signature": signature.decode() if signature else "",
        },
        "trust": {
            "key": trust.public_key.decode() if trust and trust.public_key else "",
            "identity": trust.identity if trust else "",
            "issuer": trust.issuer if trust else "",
        },
        "model_path": f"{config.serving.model_dir.rstrip('/')}/{pointer.path}",
        "startup": startup_probe(pointer.size, env.startup_seconds),
        "image": server_image(config).name,
        "card_yaml": dump_card(resolved.card),
        "labels": {
            "app.kubernetes.io/name": info.model,
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/version": str(info.version),
            "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/managed-by": "modelreg",
            "modelreg.io/model": info.model,
            "modelreg.io/version": str(info.version),
            "modelreg.io/env": env_name,
            **({"modelreg.io/track": "canary"} if track else {}),
        },
        "stable_name": f"{info.model}-{env_name}",
        "route": {"weight": 0},
        "candidate": track is not None,
    }


STARTUP_PERIOD = 5  # seconds between startup probes
STARTUP_BASE = (
    60  # seconds any server may take: imports, the SHA-256 check, the load of a small model
)
STARTUP_BYTES_PER_SECOND = 20 * 1024 * 1024  # a slow disk and CPU: hash and load 20 MiB a second


def startup_probe(size: int, seconds: int) -> dict[str, int]:
    """The startup probe's period and failure threshold: SECONDS when set, else a minute plus a
    second per 20 MiB of artifact (a 10 GiB model gets about nine minutes), so that a slow load is
    never killed by the liveness probe, which starts only after the startup probe passed."""
    budget = seconds or STARTUP_BASE + size // STARTUP_BYTES_PER_SECOND
    return {
        "period": STARTUP_PERIOD,
        "failures": max(1, -(-budget // STARTUP_PERIOD)),
        "seconds": budget,
    }


NO_REMOTE = (
    "dvc-remote-not-set"  # the URL register renders with when the registry has no remote yet
)


def render(
    registry: Registry,
    resolved: Resolved,
    env_name: str,
    registering: bool = False,
    deprecation: Any = None,
    track: Track | None = None,
) -> Rendered:
    """Render the tag's templates for one environment of the registry's policy and check every
    object against the schema. REGISTERING (register's check before it tags): a registry without a
    DVC remote renders with a placeholder URL, and the artifact signature the policy may require is
    left to the deploy gate. DEPRECATION (a policy.Deprecation in force): the server is told, and
    answers with the Deprecation and Sunset headers. TRACK: the candidate of a canary (its own
    names, replicas and share of traffic; under KServe, `canaryTrafficPercent`)."""
    config = registry.config
    config.env(env_name)
    templates, remote_url = read_tree_inputs(registry, resolved.info.commit)
    signature, trust = (
        (None, None) if registering else _artifact_trust(registry, resolved, env_name)
    )
    if registering and remote_url is None:
        remote_url = NO_REMOTE
    context = build_context(resolved, config, env_name, remote_url, signature, trust, track)
    context["deprecation"] = (
        {
            "since": deprecation.since_iso(),
            "sunset": deprecation.sunset,
            "replacement": deprecation.replacement,
        }
        if deprecation is not None
        else {}
    )
    files: dict[str, bytes] = {}
    objects: list[dict[str, Any]] = []
    for name, text in _render_all(templates, context).items():
        docs = _parse(name, text)
        for doc in docs:
            check_schema(doc, name, config.kubernetes_version)
        if docs:
            files[name.removesuffix(".j2")] = text.encode()
            objects.extend(docs)
    if track is not None and config.serving.kind == "kserve":
        files, objects = _kserve_canary(files, track.weight, resolved.info.tag)
    for name, text in _render_all(_owned_templates(), context).items():
        if name.removesuffix(".j2") in files:
            raise RenderError(
                f"templates/{name} of {resolved.info.tag}: modelreg renders {name} itself "
                f"(environments.{env_name}.monitoring or canary.gateway); rename yours"
            )
        docs = _parse(name, text)
        if docs:
            files[name.removesuffix(".j2")] = text.encode()
            objects.extend(docs)
    if not files:
        raise RenderError(
            f"the templates of {resolved.info.tag} rendered no manifest for serving.kind "
            f"{config.serving.kind!r}"
        )
    image = server_image(config)
    return Rendered(
        files=files, objects=objects, config=config, warnings=(image.note,) if image.note else ()
    )


def route(config: Config, env_name: str, model: str, weight: int) -> bytes | None:
    """The HTTPRoute of MODEL in ENV that sends WEIGHT percent of the traffic to the canary's
    Service (0: all to the stable one); None when the environment names no gateway."""
    env = config.env(env_name)
    if config.serving.kind != "deployment" or not env.canary.gateway:
        return None
    context = {
        "model": model,
        "env": env.__dict__,
        "stable_name": f"{model}-{env_name}",
        "route": {"weight": weight},
        "serving": config.serving.__dict__,
        "candidate": False,
    }
    name = f"{ROUTE_FILE}.j2"
    return _render_all({name: _owned_templates()[name]}, context)[name].encode()


def owned_files() -> set[str]:
    """The names of the files modelreg renders itself (templates/cluster/), whatever the version's
    templates are."""
    return {name.removesuffix(".j2") for name in _owned_templates()}


@functools.cache
def _owned_templates() -> dict[str, str]:
    from importlib import resources

    folder = resources.files("modelreg.templates").joinpath(OWNED_DIR)
    return {item.name: item.read_text() for item in folder.iterdir() if item.name.endswith(".j2")}


def _kserve_canary(
    files: dict[str, bytes], weight: int, tag: str
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """The candidate's InferenceService with `spec.predictor.canaryTrafficPercent`: KServe keeps
    the last ready revision (the stable one) for the rest of the traffic. Raw deployment mode has no
    revisions to split between: refused. The files, and the objects they hold."""
    import yaml

    out: dict[str, bytes] = {}
    objects: list[dict[str, Any]] = []
    for name, data in files.items():
        docs = [d for d in safe_yaml.load_all(data.decode(), name, RenderError) if d is not None]
        split = [d for d in docs if d.get("kind") == "InferenceService"]
        for doc in split:
            annotations = doc.get("metadata", {}).get("annotations") or {}
            if annotations.get("serving.kserve.io/deploymentMode") == "RawDeployment":
                raise RenderError(
                    f"{tag}: KServe's RawDeployment mode cannot split traffic "
                    "(canaryTrafficPercent needs Serverless mode's revisions)"
                )
            doc["spec"]["predictor"]["canaryTrafficPercent"] = weight
            check_schema(doc, f"{name}.j2", "")  # a CRD: no Kubernetes version is read
        out[name] = yaml.safe_dump_all(docs, sort_keys=False).encode() if split else data
        objects.extend(docs)
    if not any(d.get("kind") == "InferenceService" for d in objects):
        raise RenderError(f"{tag}: the templates rendered no InferenceService to split traffic on")
    return out, objects


def _artifact_trust(
    registry: Registry, resolved: Resolved, env_name: str
) -> tuple[bytes | None, Any]:
    """The version's artifact signature and whom ENV trusts, when ENV requires a signed artifact
    (policy,
    read as the gates read it: a version registered before the policy is held to it too)."""
    from modelreg import artifact_signature

    env = registry.config.environments.get(env_name)
    if env is None or not env.require_artifact_signature:
        return None, None
    signature = artifact_signature.signature_of(registry, resolved.info)
    if signature is None:
        raise RenderError(
            f"{resolved.info.tag} has no artifact signature and {env_name} requires one "
            "(require_artifact_signature): register it with --sign-artifact --key KEY"
        )
    return signature, artifact_signature.trust_of(registry, env)


def _render_all(templates: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    def load(name: str) -> tuple[str, str, Any] | None:
        return (
            (templates[name], f"{TEMPLATES_DIR}/{name}", lambda: True)
            if name in templates
            else None
        )

    env = BoundedSandbox(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = quote
    out = {}
    for name in sorted(templates):
        if name.startswith("_"):
            continue
        try:
            out[name] = env.render_bounded(env.get_template(name), context)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"templates/{exc.name or name}:{exc.lineno}: {exc.message}") from None
        except (
            jinja2.TemplateError,
            ArithmeticError,
            ValueError,
            TypeError,
            LookupError,
            RecursionError,
            MemoryError,
        ) as exc:
            raise RenderError(
                f"templates/{_failing_line(exc, templates, name)}: {_describe(exc)}"
            ) from None
    return out


def _describe(exc: BaseException) -> str:
    """One line for a template failure; Python's own errors keep their type name."""
    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, jinja2.TemplateError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failing_line(exc: Exception, templates: dict[str, str], default: str) -> str:
    """`file:line` of the template frame that raised (Jinja maps its frames back to template
    lines)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if (
            frame.filename.startswith(f"{TEMPLATES_DIR}/")
            and frame.filename[len(TEMPLATES_DIR) + 1 :] in templates
        ):
            return f"{frame.filename[len(TEMPLATES_DIR) + 1 :]}:{frame.lineno}"
    return default


def _parse(name: str, text: str) -> list[dict[str, Any]]:
    docs = [
        d
        for d in safe_yaml.load_all(text, f"templates/{name} rendered output", RenderError)
        if d is not None
    ]
    for doc in docs:
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            raise RenderError(
                f"templates/{name} rendered a document that is not a Kubernetes object "
                "(apiVersion and kind are required)"
            )
    return docs


def crd_schema(kind: str) -> dict[str, Any]:
    """The bundled JSON schema of a KServe resource (kubernetes-validate knows no CRDs)."""
    from importlib import resources

    return json.loads(resources.files("modelreg.templates").joinpath(CRD_SCHEMAS[kind]).read_text())


def _kubernetes_validate() -> Any:
    """kubernetes-validate, with its schema files read once per process: it re-reads the 1 MB
    `_definitions.json` for every object otherwise (about 50 ms each, four objects per render)."""
    import functools

    import kubernetes_validate
    import kubernetes_validate.utils as utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=32)(utils.schema_contents)
    return kubernetes_validate


def check_schema(obj: dict[str, Any], template: str, kubernetes_version: str) -> None:
    """Validate one object against the Kubernetes OpenAPI schema (strict: no unknown fields)."""
    kubernetes_validate = _kubernetes_validate()

    where = f"templates/{template}: {obj.get('kind')} {obj.get('metadata', {}).get('name', '?')}"
    if obj.get("kind") in CRD_SCHEMAS:
        import jsonschema

        errors = sorted(
            jsonschema.Draft7Validator(crd_schema(obj["kind"])).iter_errors(obj), key=str
        )
        if errors:
            path = ".".join(str(p) for p in errors[0].absolute_path)
            raise RenderError(
                f"{where} fails the {obj['kind']} schema at {path or '(root)'}: {errors[0].message}"
            )
        return
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        raise RenderError(
            f"{where} fails the Kubernetes {kubernetes_version} schema at {path or '(root)'}: "
            f"{exc.message}"
        ) from None
    except (
        kubernetes_validate.SchemaNotFoundError,
        kubernetes_validate.utils.VersionNotSupportedError,
    ) as exc:
        raise RenderError(f"{where}: {exc.message}") from None
