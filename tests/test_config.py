from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.config import default_config_text, parse_config
from modelreg.errors import ConfigError


def test_defaults() -> None:
    config = parse_config("")
    assert config.models_dir == "models"
    assert list(config.environments) == ["staging", "prod"]
    assert config.environments["prod"].requires == "staging"
    assert config.deploy.branch == "deploy"


def test_init_text_round_trips() -> None:
    config = parse_config(default_config_text("churn"))
    assert config.default_model == "churn"
    assert config.environments["prod"].replicas == 2


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "environments:\n  prod:\n    replicas: three\n",
            'environments.prod.replicas: expected an integer, got "three"',
        ),
        ("colour: blue\n", "colour: unknown key"),
        ("environments:\n  prod:\n    replica: 2\n", "environments.prod.replica: unknown key"),
        ("versions: calver\n", 'versions: expected one of integer, semver, got "calver"'),
        ("deploy:\n  branch: [a]\n", 'deploy.branch: expected a string, got ["a"]'),
        (
            "environments:\n  prod:\n    validate: yes please\n",
            "environments.prod.validate: expected true or false",
        ),
        (
            "environments:\n  prod:\n    requires: qa\n",
            "environments.prod.requires: no environment named 'qa'",
        ),
        ("environments:\n  Prod: {}\n", "DNS-1123"),
        ("default_model: Churn\n", "default_model"),
        ("serving:\n  kind: lambda\n", "serving.kind"),
        ("- a\n", "mapping"),
        ("a: [\n", "not valid YAML"),
        *(
            (f"environments:\n  prod:\n    canary: {canary}\n", message)
            for canary, message in [
                ("{steps: [50, 10]}", "environments.prod.canary.steps: expected rising weights"),
                ("{steps: [0, 50]}", "from 1 to 99 percent"),
                ("{steps: 7}", "environments.prod.canary.steps: expected a list, got 7"),
                ("{min_success_rate: 2}", "min_success_rate: a ratio from 0 to 1"),
                ("{max_p99_ratio: .nan}", "max_p99_ratio: expected a number, got NaN"),
                ("{max_p99_seconds: 1.0e+300}", "max_p99_seconds: expected a number from 0 to"),
                ("{interval: soon}", "canary.interval: 'soon' is not a duration"),
                ("{window: 0s}", "canary.window: must be longer than 0s"),
                ("{count: 0}", "canary.count: at least 1 measurement"),
                ("{gateways: a}", "canary.gateways: unknown key"),
                ("{checks: [{name: q}]}", "checks[0]: needs a name (a DNS-1123 label) and a query"),
                ("{checks: [{name: q, query: up}]}", "checks[0]: give max or min"),
                ("{checks: [{name: q, query: up, max: 1, extra: 2}]}", "checks[0].extra: unknown"),
                (
                    "{checks: [{name: q, query: up, max: 1}, {name: q, query: up, min: 0}]}",
                    "two checks have the same name",
                ),
                ("nope", "environments.prod.canary: expected a mapping"),
                (
                    "{checks: [{name: q, max: 1, query: " + "x" * 5000 + "}]}",
                    "checks[0].query: at most 4096 characters",
                ),
            ]
        ),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


@pytest.mark.parametrize("default_model", [None, "churn"])
def test_one_set_of_defaults_what_init_writes_is_what_no_file_means(
    tmp_path: Path, default_model: str | None
) -> None:
    """The modelreg.yaml `init` writes spells out every default: reading it gives the same
    settings as a registry with no modelreg.yaml at all (or one naming only the default model)."""
    from modelreg.init import init

    init(tmp_path, default_model=default_model)
    written = (tmp_path / "modelreg.yaml").read_text()
    assert written == default_config_text(default_model)
    bare = parse_config(f"default_model: {default_model}\n" if default_model else "")
    assert parse_config(written) == bare
    assert bare.environments["prod"].max_replicas == 6  # the figure init has always written
