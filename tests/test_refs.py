from __future__ import annotations

import pytest

from modelreg.errors import RefError
from modelreg.refs import check_name, next_version, parse_ref, parse_tag, parse_version


@pytest.mark.parametrize("name", ["churn", "a", "fraud-v2", "x" * 53, "0abc"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name,reason",
    [
        ("../x", "DNS-1123"),
        ("Churn", "DNS-1123"),
        ("a_b", "DNS-1123"),
        ("x" * 60, "at most 53"),
        ("-a", "DNS-1123"),
        ("a-", "DNS-1123"),
        ("", "DNS-1123"),
    ],
)
def test_invalid_names(name: str, reason: str) -> None:
    with pytest.raises(RefError, match=reason):
        check_name(name)


@pytest.mark.parametrize(
    "text,parts", [("v1", (1,)), ("v10", (10,)), ("v1.2.3", (1, 2, 3)), ("v0.0.1", (0, 0, 1))]
)
def test_versions_parse(text: str, parts: tuple[int, ...]) -> None:
    version = parse_version(text)
    assert version.parts == parts
    assert str(version) == text


@pytest.mark.parametrize("text", ["3", "v1.2", "latest", "v01", "V1", "v1.2.3.4", "v-1", "v1.02.3"])
def test_bad_versions(text: str) -> None:
    with pytest.raises(RefError, match="invalid version"):
        parse_version(text)


def test_versions_order_numerically() -> None:
    texts = ["v10", "v2", "v1", "v1.10.0", "v1.9.0", "v1.2.3"]
    assert [str(v) for v in sorted(parse_version(t) for t in texts)] == [
        "v1",
        "v1.2.3",
        "v1.9.0",
        "v1.10.0",
        "v2",
        "v10",
    ]


@pytest.mark.parametrize(
    "tag,default,expected",
    [
        ("churn@v3", None, ("churn", "v3")),
        ("churn@v1.2.3", None, ("churn", "v1.2.3")),
        ("v3", "churn", ("churn", "v3")),
        ("v3", None, None),
        ("churn@latest", None, None),
        ("Churn@v3", None, None),
        ("release-2024", "churn", None),
        ("churn#prod#1", None, None),
    ],
)
def test_parse_tag(tag: str, default: str | None, expected: tuple[str, str] | None) -> None:
    ref = parse_tag(tag, default)
    assert (None if ref is None else (ref.model, str(ref.version))) == expected


def test_parse_ref_forms() -> None:
    assert parse_ref("churn", None).version is None
    assert str(parse_ref("churn@v2", None).version) == "v2"
    assert parse_ref("v2", "churn").model == "churn"
    with pytest.raises(RefError, match="names no model"):
        parse_ref("v2", None)


@pytest.mark.parametrize(
    "latest,scheme,bump,expected",
    [
        (None, "integer", None, "v1"),
        ("v3", "integer", None, "v4"),
        (None, "semver", None, "v1.0.0"),
        ("v1.2.3", "semver", None, "v1.2.4"),
        ("v1.2.3", "semver", "minor", "v1.3.0"),
        ("v1.2.3", "semver", "major", "v2.0.0"),
        ("v1.2.3", "semver", "patch", "v1.2.4"),
    ],
)
def test_next_version(latest: str | None, scheme: str, bump: str | None, expected: str) -> None:
    assert str(next_version(parse_version(latest) if latest else None, scheme, bump)) == expected


def test_bump_needs_semver() -> None:
    with pytest.raises(RefError, match="semver"):
        next_version(parse_version("v3"), "integer", "minor")
