"""modelreg.yaml: loaded into frozen dataclasses and validated on load.

An unknown key or a wrong type is one error that names the key, e.g.
`environments.prod.replicas: expected an integer, got "three"`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from modelreg import safe_yaml
from modelreg.errors import ConfigError
from modelreg.refs import NAME_RE, SCHEMES

CONFIG_FILE = "modelreg.yaml"


@dataclass(frozen=True)
class Check:
    """A check of the user's own: a PromQL query whose value must stay at or below `max` (or at or
    above `min`). `{model}`, `{version}` and `{namespace}` in the query are the candidate's. A `key`
    check failing fails the analysis alone, whatever `failure_limit` tolerates."""

    name: str = ""
    query: str = ""
    max: float | None = None
    min: float | None = None
    key: bool = False


@dataclass(frozen=True)
class Canary:
    """How a canary runs in one environment and how `modelreg analyze` judges it."""

    gateway: str = ""  # the Gateway API Gateway whose HTTPRoute splits traffic (kind deployment)
    gateway_namespace: str = ""  # where that Gateway lives (default: the environment's namespace)
    steps: tuple[int, ...] = (10, 50)  # weights in percent; promote needs a pass at the last
    interval: str = "1m"  # between two measurements
    count: int = 3  # measurements in one analysis
    failure_limit: int = 0  # failed measurements tolerated before the verdict is failed
    window: str = "5m"  # the range each query looks back over
    min_requests: int = 50  # traffic floor: fewer candidate (or stable) requests: inconclusive
    min_success_rate: float = 0.99  # non-5xx answers / all answers, the candidate's
    max_success_drop: float = 0.01  # at most this far below the stable version's success rate
    max_client_error_rise: float = 0.01  # 4xx ratio at most this far above the stable version's
    max_p99_seconds: float = 1.0
    max_p99_ratio: float = 1.5  # the candidate's p99 at most this times the stable version's
    check_bytes: bool = True  # every candidate pod reports the card's SHA-256, all pods report
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Environment:
    name: str = ""
    namespace: str = ""
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_percent: int = 75
    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"
    gpu: int = 0
    requires: str | None = None
    validate: bool = False
    require_lineage: bool = False  # the card must record the DVC stage that made the artifact
    # "compatible": refuse a version whose signature breaks the live one's callers (modelreg diff)
    schema: str = ""
    storage_url: str | None = (
        None  # a mirror of the DVC remote near this cluster: the base of artifact URLs
    )
    require_signed: bool = (
        False  # only versions whose tag an allowed signer signed (see signing.py)
    )
    soak: str | None = (
        None  # with requires: how long a version must have run there first (30m, 2h, 1d)
    )
    approvals: int = (
        0  # distinct allowed signers (not the tag's author) who must `modelreg approve` it
    )
    # Only versions whose artifact signature (model.sig) this key or identity made, over the bytes
    # in the remote:
    require_artifact_signature: bool = False
    artifact_key: str | None = (
        None  # a PEM public key, a path in the registry (.modelreg/release.pub)
    )
    artifact_identity: str | None = (
        None  # or keyless Sigstore: the signer's identity and its OIDC issuer
    )
    artifact_issuer: str | None = None
    require_image_digest: bool = (
        False  # the server image must be named by digest (image@sha256:...)
    )
    startup_seconds: int = 0  # how long the server may take to start (0: sized from the artifact)
    termination_grace_seconds: int = (
        30  # drain on SIGTERM: readiness fails, in-flight requests finish
    )
    network_policy: bool = (
        False  # a NetworkPolicy: ingress to the server port; egress to DNS and storage
    )
    storage_port: int = 443  # the storage endpoint's port, for that NetworkPolicy's egress
    # a PodMonitor and a PrometheusRule (alerts) rendered with the manifests
    monitoring: bool = False
    canary: Canary = field(default_factory=lambda: Canary())  # `modelreg canary`, `analyze`


@dataclass(frozen=True)
class Deploy:
    branch: str = "deploy"
    remote: str = "origin"
    path: str = "{env}/{model}"


@dataclass(frozen=True)
class Serving:
    kind: str = "deployment"
    image: str = ""  # default: modelreg's own image, tagged with the modelreg version that renders
    port: int = 8080
    runtime: str = "modelreg"
    model_format: str = "pytorch"
    model_dir: str = "/models"
    # deploys refuse versions modelreg's server cannot run (false: your templates run another)
    servable: bool = True


@dataclass(frozen=True)
class Site:
    publish: bool = False  # the workflow publishes `modelreg site` to GitHub Pages


@dataclass(frozen=True)
class Config:
    models_dir: str = "models"
    default_model: str | None = None
    versions: str = "integer"
    kubernetes_version: str = "1.30"
    environments: dict[str, Environment] = field(default_factory=dict)
    deploy: Deploy = field(default_factory=Deploy)
    serving: Serving = field(default_factory=Serving)
    site: Site = field(default_factory=Site)
    source: str = CONFIG_FILE  # where it was read (settings.Source.describe): named in errors

    def env(self, name: str) -> Environment:
        if name not in self.environments:
            raise ConfigError(
                f"unknown environment {name!r}: {self.source} has {', '.join(self.environments)}"
            )
        return self.environments[name]


DEFAULT_FILE = "default-config.yaml"  # in modelreg.templates
MAX_INT = 1_000_000
INTERNAL = {"name", "source"}  # fields modelreg fills in, never keys of the file
TYPE_WORDS = {
    int: "an integer",
    str: "a string",
    bool: "true or false",
    dict: "a mapping",
    float: "a number",
    list: "a list",
}


def _check_type(value: Any, expected: type, key: str, optional: bool) -> Any:
    if value is None and optional:
        return None
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if expected is float and ok and value != value:  # NaN
        ok = False
    if not ok:
        shown = json.dumps(value, default=str)
        raise ConfigError(
            f"{key}: expected {TYPE_WORDS[expected]}, got "
            f"{shown if len(shown) <= 60 else shown[:60] + '...'}"
        )
    if expected is int and isinstance(value, int) and not 0 <= value <= MAX_INT:
        raise ConfigError(f"{key}: expected an integer from 0 to {MAX_INT}")
    if expected is float and isinstance(value, float) and not 0 <= value <= MAX_INT:
        raise ConfigError(f"{key}: expected a number from 0 to {MAX_INT}")
    return value


def _build(cls: type, data: Any, key: str, extra: dict[str, Any] | None = None) -> Any:
    data = _check_type({} if data is None else data, dict, key or "modelreg.yaml", False)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    internal = INTERNAL if cls in (Environment, Config) else set()
    values = dict(extra or {})
    for name, value in data.items():
        where = f"{key}.{name}" if key else str(name)
        if name not in hints or name in internal:
            raise ConfigError(
                f"{where}: unknown key (known: {', '.join(sorted(set(hints) - internal))})"
            )
        hint = str(hints[name])
        base = {"int": int, "str": str, "bool": bool, "float": float}.get(hint.split(" ")[0])
        if base is not None:
            values[name] = _check_type(value, base, where, "None" in hint)
        else:
            values[name] = value
    return cls(**values)


def parse_config(text: str | bytes, source: str = CONFIG_FILE) -> Config:
    """Parse and validate the text of modelreg.yaml (SOURCE: where it was read, for messages)."""
    data = safe_yaml.load(text, CONFIG_FILE, ConfigError) or {}
    if not isinstance(data, dict):
        raise ConfigError("modelreg.yaml: expected a mapping of settings at the top level")
    envs_raw = data.pop("environments", None)
    envs_raw = (
        default_environments()
        if envs_raw is None
        else _check_type(envs_raw, dict, "environments", False)
    )
    deploy = _build(Deploy, data.pop("deploy", None), "deploy")
    serving = _build(Serving, data.pop("serving", None), "serving")
    site = _build(Site, data.pop("site", None), "site")
    envs = {}
    for name, settings in envs_raw.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"environments.{name}: an environment name must be a DNS-1123 label (staging, prod)"
            )
        where = f"environments.{name}"
        settings = dict(_check_type({} if settings is None else settings, dict, where, False))
        canary = _canary(settings.pop("canary", None), f"{where}.canary")
        envs[name] = _build(Environment, settings, where, {"name": name, "canary": canary})
        if not envs[name].namespace:
            envs[name] = dataclasses.replace(envs[name], namespace=name)
    config = _build(
        Config,
        data,
        "",
        {
            "environments": envs,
            "deploy": deploy,
            "serving": serving,
            "site": site,
            "source": source,
        },
    )
    _check_consistency(config)
    return config


def _check_consistency(config: Config) -> None:
    if config.versions not in SCHEMES:
        raise ConfigError(
            f"versions: expected one of {', '.join(SCHEMES)}, got {json.dumps(config.versions)}"
        )
    if config.default_model is not None and not NAME_RE.fullmatch(config.default_model):
        raise ConfigError(f"default_model: {config.default_model!r} is not a valid model name")
    if not config.environments:
        raise ConfigError("environments: at least one environment is needed")
    if config.serving.kind not in ("deployment", "kserve"):
        raise ConfigError(
            f"serving.kind: expected deployment or kserve, got {json.dumps(config.serving.kind)}"
        )
    for env in config.environments.values():
        if env.requires is not None and env.requires not in config.environments:
            raise ConfigError(
                f"environments.{env.name}.requires: no environment named {env.requires!r}"
            )
        if env.soak is not None:
            if env.requires is None:
                raise ConfigError(
                    f"environments.{env.name}.soak: needs `requires` (where the version soaks)"
                )
            duration_seconds(env.soak, f"environments.{env.name}.soak")
        _check_artifact_trust(env)
        if env.network_policy and config.serving.kind == "kserve":
            raise ConfigError(
                f"environments.{env.name}.network_policy: rendered for serving.kind deployment "
                "only "
                "(KServe's pods take traffic through ports its deployment mode picks: use its own "
                "policies)"
            )
        for key in ("startup_seconds", "termination_grace_seconds"):
            if not 0 <= getattr(env, key) <= 86400:
                raise ConfigError(
                    f"environments.{env.name}.{key}: expected 0 to 86400 seconds, got "
                    f"{getattr(env, key)}"
                )
        if env.schema not in ("", "compatible"):
            raise ConfigError(
                f"environments.{env.name}.schema: expected compatible (or nothing), got "
                f"{json.dumps(env.schema)}"
            )
        if not 1 <= env.storage_port <= 65535:
            raise ConfigError(
                f"environments.{env.name}.storage_port: expected a port (1-65535), got "
                f"{env.storage_port}"
            )
    _check_deploy(config.deploy)


MAX_QUERY = 4096  # characters of a check's PromQL


def _canary(data: Any, where: str) -> Canary:
    data = dict(_check_type({} if data is None else data, dict, where, False))
    steps = _check_type(data.pop("steps", [10, 50]), list, f"{where}.steps", False)
    checks = _check_type(data.pop("checks", []), list, f"{where}.checks", False)
    canary = _build(Canary, data, where)
    weights = tuple(_check_type(w, int, f"{where}.steps", False) for w in steps)
    if (
        not weights
        or any(not 1 <= w <= 99 for w in weights)
        or list(weights) != sorted(set(weights))
    ):
        raise ConfigError(
            f"{where}.steps: expected rising weights from 1 to 99 percent, such as [10, 50]"
        )
    for key in ("interval", "window"):
        if duration_seconds(getattr(canary, key), f"{where}.{key}") == 0:
            raise ConfigError(f"{where}.{key}: must be longer than 0s")
    if canary.count < 1:
        raise ConfigError(f"{where}.count: at least 1 measurement")
    if canary.min_success_rate > 1:
        raise ConfigError(f"{where}.min_success_rate: a ratio from 0 to 1")
    built: list[Check] = []
    for number, item in enumerate(checks):
        check = _build(Check, item, f"{where}.checks[{number}]")
        if len(check.query) > MAX_QUERY:
            raise ConfigError(f"{where}.checks[{number}].query: at most {MAX_QUERY} characters")
        if not NAME_RE.fullmatch(check.name) or not check.query.strip():
            raise ConfigError(
                f"{where}.checks[{number}]: needs a name (a DNS-1123 label) and a query"
            )
        if (check.max is None) == (check.min is None):
            raise ConfigError(f"{where}.checks[{number}]: give max or min (one of them)")
        built.append(check)
    if len({c.name for c in built}) != len(built):
        raise ConfigError(f"{where}.checks: two checks have the same name")
    return dataclasses.replace(canary, steps=weights, checks=tuple(built))


def _check_artifact_trust(env: Environment) -> None:
    where = f"environments.{env.name}"
    if env.artifact_key is not None:
        parts = env.artifact_key.split("/")
        if (
            env.artifact_key.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or "\\" in env.artifact_key
        ):
            raise ConfigError(
                f"{where}.artifact_key: {env.artifact_key[:80]!r} must be a path inside the "
                "registry "
                "(.modelreg/release.pub)"
            )
    if (env.artifact_identity is None) != (env.artifact_issuer is None):
        raise ConfigError(
            f"{where}: artifact_identity and artifact_issuer go together (a Sigstore identity and "
            "the OIDC issuer that vouches for it)"
        )
    if env.artifact_key is not None and env.artifact_identity is not None:
        raise ConfigError(f"{where}: trust artifact_key or artifact_identity, not both")
    if (
        env.require_artifact_signature
        and env.artifact_key is None
        and env.artifact_identity is None
    ):
        raise ConfigError(
            f"{where}.require_artifact_signature: name whom to trust: artifact_key "
            "(a public key in the registry) or artifact_identity + artifact_issuer"
        )


def _check_deploy(deploy: Deploy) -> None:
    """The deploy path stays inside the branch's tree; branch and remote are plain git names."""
    if "{env}" not in deploy.path or "{model}" not in deploy.path:
        raise ConfigError("deploy.path: must contain {env} and {model}")
    try:
        sample = deploy.path.format(env="env", model="model")
    except (KeyError, IndexError, ValueError):
        raise ConfigError("deploy.path: only {env} and {model} may appear in braces") from None
    parts = sample.split("/")
    if (
        sample.startswith("/")
        or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)
        or "\\" in sample
    ):
        raise ConfigError(
            f"deploy.path: {deploy.path!r} must be a relative path inside the deploy branch "
            "(no leading /, no empty, . or .. parts, no .git)"
        )
    if (
        not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", deploy.branch)
        or ".." in deploy.branch
        or deploy.branch.endswith((".lock", "/", "."))
    ):
        raise ConfigError(f"deploy.branch: {deploy.branch!r} is not a usable branch name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", deploy.remote):
        raise ConfigError(f"deploy.remote: {deploy.remote!r} is not a usable remote name")


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str, where: str) -> int:
    """`90s`, `30m`, `2h`, `1d` in seconds."""
    match = re.fullmatch(r"([0-9]{1,6})([smhd])", text.strip())
    if match is None:
        raise ConfigError(f"{where}: {text[:40]!r} is not a duration (such as 30m, 2h or 1d)")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def default_config_text(default_model: str | None) -> str:
    """The modelreg.yaml that `init` writes (templates/default-config.yaml): every key, with the
    value a registry without the file gets (tests/test_config.py holds the two equal)."""
    model_line = (
        f"default_model: {default_model}\n"
        if default_model
        else "# default_model: churn   # plain `v3` tags then mean churn@v3\n"
    )
    return _default_text().replace("@@DEFAULT_MODEL@@\n", model_line)


@functools.cache
def _default_text() -> str:
    return resources.files("modelreg.templates").joinpath(DEFAULT_FILE).read_text()


def default_environments() -> dict[str, Any]:
    """The environments of a registry whose modelreg.yaml names none: those `init` writes."""
    data = safe_yaml.load(_default_text().replace("@@DEFAULT_MODEL@@\n", ""), DEFAULT_FILE)
    return dict(data["environments"])
