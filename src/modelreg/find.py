"""`modelreg find EXPR`: versions matching an expression over what the registry knows of them.

The language (parsed here, never eval'd):

    expr    := term ('or' term)*          term := factor ('and' factor)* factor  := 'not' factor |
    '(' expr ')' | FIELD [OP VALUE] OP      := == != < <= > >= ~          (~: contains,
    case-insensitive) VALUE   := a number, a "string" or 'string', a date 2026-03-01, true, false,
    or a bare word (prod)

Fields: `model`, `version`, `tag`, `author`, `date` (when registered; compared by day when the value
is a day), `metrics.NAME`, `params.NAME`, `live` (the environments it is live in now), `was_live`
(every environment it was ever deployed to), `quarantined`, `deprecated`, `signed` (an artifact
signature), `signer` (`key:<sha256 of the public key>`, or `identity:<who>` for keyless), `uses` (a
path its lineage's dependencies name), `uses_md5`. A field alone is a test of
truth (`quarantined`). A missing metric or param makes its comparison false.

Cards are read once per tag object (immutable) and kept in `<git dir>/modelreg/find-cards`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from modelreg import cache, git
from modelreg.card import entries, section
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.refs import parse_version

TOKEN = re.compile(
    r"""\s*(?:(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w-]))|(?P<date>\d{4}-\d{2}-\d{2}(?:T[\d:]+Z?)?)
                      |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>==|!=|<=|>=|<|>|~)|(?P<paren>[()])
                      |(?P<word>[A-Za-z_][\w.@/-]*))""",
    re.VERBOSE,
)
FIELDS = (
    "model",
    "version",
    "tag",
    "author",
    "date",
    "live",
    "was_live",
    "quarantined",
    "deprecated",
    "signed",
    "signer",
    "uses",
    "uses_md5",
)
CACHE = "find-cards.v2"  # the fields kept per card changed: a new name, not a stale read
MAX_EXPR = 2000


class Facts(NamedTuple):
    """What find knows of one version (a tuple: there are 100,000 of them)."""

    model: str
    version: str
    tag: str
    author: str
    date: str  # ISO 8601, from the card's `created` (else the tag's time)
    metrics: dict[str, Any]
    params: dict[str, Any]
    live: frozenset[str]
    was_live: frozenset[str]
    quarantined: bool
    deprecated: bool
    signed: bool
    # who signed the artifact: `key:<sha256 of the public key>` or the Sigstore identity
    signer: str
    uses: dict[str, str]  # lineage dependency path -> md5

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "live": sorted(self.live), "was_live": sorted(self.was_live)}


Test = Callable[[Facts], bool]


class Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_EXPR:
            raise ModelregError(f"find: the expression is over {MAX_EXPR} characters")
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                self.fail("unexpected character", len(text) - len(text[pos:].lstrip()))
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def fail(self, what: str, pos: int | None = None, hint: str = "") -> None:
        at = len(self.text) if pos is None else pos
        raise ModelregError(f"find: {what} at position {at + 1} of {self.text!r}{hint}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            self.fail("the expression ends too early")
        assert token is not None
        self.i += 1
        return token

    def word(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == value:
            self.i += 1
            return True
        return False

    def parse(self) -> Test:
        if not self.tokens:
            self.fail("an empty expression", 0)
        test = self.expr()
        token = self.peek()
        if token is not None:
            self.fail(f"unexpected {token[1]!r}", token[2])
        return test

    def expr(self) -> Test:
        terms = [self.term()]
        while self.word("or"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda f: any(t(f) for t in terms))

    def term(self) -> Test:
        factors = [self.factor()]
        while self.word("and"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda f: all(t(f) for t in factors))

    def factor(self) -> Test:
        if self.word("not"):
            inner = self.factor()
            return lambda f: not inner(f)
        kind, value, pos = self.take()
        if kind == "paren" and value == "(":
            inner = self.expr()
            closing = self.peek()
            if closing is None or closing[1] != ")":
                self.fail("expected ')'", closing[2] if closing else None)
            self.i += 1
            return inner
        if kind != "word":
            self.fail(f"expected a field, got {value!r}", pos)
        name = value
        if name not in FIELDS and not name.startswith(("metrics.", "params.")):
            self.fail(
                f"unknown field {name!r}",
                pos,
                f" (fields: {', '.join(FIELDS)}, metrics.NAME, params.NAME)",
            )
        token = self.peek()
        if token is None or token[0] != "op":
            return lambda f: bool(_get(f, name))
        op = self.take()[1]
        vkind, raw, vpos = self.take() if self.peek() else (None, "", len(self.text))
        if vkind not in ("num", "str", "word", "date"):
            self.fail(f"expected a value after {op}", vpos)
        return _compare(name, op, _literal(vkind or "", raw))


def _literal(kind: str, raw: str) -> Any:
    if kind == "num":
        return float(raw)
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def _get(facts: Facts, name: str) -> Any:
    if name.startswith("metrics."):
        return facts.metrics.get(name[8:])
    if name.startswith("params."):
        return facts.params.get(name[7:])
    return getattr(facts, name)


ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "~": lambda a, b: str(b).lower() in str(a).lower(),
}


def _compare(name: str, op: str, value: Any) -> Test:
    check = ORDER[op]
    if name in ("live", "was_live", "uses", "uses_md5"):  # sets: == is membership, != its absence
        if op not in ("==", "!=", "~"):
            raise ModelregError(f"find: {name} takes ==, != or ~ (it is a set)")
        want = str(value)

        def member(f: Facts) -> bool:
            found = (
                getattr(f, name)
                if name in ("live", "was_live")
                else (f.uses.keys() if name == "uses" else f.uses.values())
            )
            hit = any(check(item, want) for item in found) if op == "~" else want in found
            return hit if op != "!=" else not hit

        return member
    if name == "version":
        key = _version_key(str(value))
        return lambda f: (
            key is not None and (k := _version_key(f.version)) is not None and check(k, key)
        )
    if name == "date":
        day = str(value)
        return lambda f: check(f.date[: len(day)] if len(day) == 10 else f.date, day)

    def compare(f: Facts) -> bool:
        got = _get(f, name)
        if got is None:
            return False
        if isinstance(value, bool) or isinstance(got, bool):
            return check(bool(got), value) if isinstance(value, bool) else False
        if isinstance(value, float):
            return isinstance(got, (int, float)) and check(float(got), value)
        return check(got if isinstance(got, str) else str(got), str(value))

    return compare


def _version_key(text: str) -> Any:
    try:
        return parse_version(text).key
    except ModelregError:
        return None


def parse(text: str) -> Test:
    """The test EXPR stands for; a ModelregError naming the position of what is wrong."""
    return Parser(text).parse()


def find(registry: Registry, expression: str) -> list[Facts]:
    """Every valid version for which EXPRESSION holds, oldest first per model."""
    test = parse(expression)
    return [f for f in facts(registry) if test(f)]


TABLE = "find-table"
COLUMNS = list(Facts._fields)


def facts(registry: Registry) -> list[Facts]:
    """What find knows of every valid version. Kept whole in `<git dir>/modelreg/find-table`, keyed
    by the tag refs (names and objects), the deploy branch's tip and the settings that read tags:
    any change of those is a new key, and the table is built again (cards from the per-object
    cache)."""
    import hashlib

    from modelreg import target

    refs = git.run_git(
        "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags", cwd=registry.root
    )
    config = registry.config
    key = hashlib.sha256(
        "\0".join(
            [
                refs,
                target.tip(registry) or "",
                str(config.default_model),
                config.models_dir,
                ",".join(COLUMNS),
            ]
        ).encode()
    ).hexdigest()
    path = cache.path(registry.root, TABLE)
    try:
        saved = json.loads(cache.read(path) or "{}")
        if saved.get("key") == key:
            columns = [saved["columns"][name] for name in COLUMNS]
            return [
                Facts._make((*row[:7], frozenset(row[7]), frozenset(row[8]), *row[9:]))
                for row in zip(*columns)
            ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    found = _build(registry)
    table = {
        name: [
            sorted(v) if isinstance(v, frozenset) else v for v in (getattr(f, name) for f in found)
        ]
        for name in COLUMNS
    }
    cache.write(path, json.dumps({"key": key, "columns": table}, separators=(",", ":")))
    return found


def _build(registry: Registry) -> list[Facts]:
    from modelreg import policy, target
    from modelreg.versions import scan

    versions = [v for v in scan(registry) if v.valid]
    cards = _cards(registry, versions)
    records = target.read_log(registry)
    rules = policy.derive(records)
    live: dict[tuple[str, str], set[str]] = {}
    ever: dict[tuple[str, str], set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for r in records:  # newest first
        if r.changes_manifests:
            ever.setdefault((r.model, r.version), set()).add(r.env)
            if (r.env, r.model) not in seen:
                seen.add((r.env, r.model))
                live.setdefault((r.model, r.version), set()).add(r.env)
    found = []
    for v in versions:
        card = cards.get(v.object, {})
        key = (v.model, str(v.version))
        found.append(
            Facts(
                model=v.model,
                version=str(v.version),
                tag=v.tag,
                author=str(card.get("author") or v.author),
                date=str(card.get("created") or ""),
                metrics=section(card, "metrics"),
                params=section(card, "params"),
                live=frozenset(live.get(key, ())),
                was_live=frozenset(ever.get(key, ())),
                quarantined=key in rules.quarantined,
                deprecated=key in rules.deprecated,
                signed=bool(card.get("signed")),
                signer=str(card.get("signer") or ""),
                uses=card.get("uses") or {},
            )
        )
    return found


def _cards(registry: Registry, versions: list[Any]) -> dict[str, dict[str, Any]]:
    """tag object -> the card's fields find reads: from the cache, the rest in one cat-file
    batch."""
    path = cache.path(registry.root, CACHE)
    try:
        cached: dict[str, dict[str, Any]] = json.loads(cache.read(path) or "{}")
    except ValueError:
        cached = {}
    if not isinstance(cached, dict):  # damaged: rebuilt
        cached = {}
    missing = [v for v in versions if v.object not in cached]
    if missing:
        from modelreg.card import parse_card

        blobs = git.read_objects(
            registry.root, [f"{v.commit}:{registry.model_dir(v.model)}/model.yaml" for v in missing]
        )
        for v, blob in zip(missing, blobs):
            try:
                card = parse_card(blob[1], v.tag) if blob else {}
            except ModelregError:
                card = {}
            cached[v.object] = _summary(card)
        wanted = {v.object for v in versions}
        cache.write(
            path,
            json.dumps({k: c for k, c in cached.items() if k in wanted}, separators=(",", ":")),
        )
    return cached


def _summary(card: dict[str, Any]) -> dict[str, Any]:
    artifact = section(card, "artifact")
    lineage = section(card, "lineage")
    deps = entries(lineage, "deps")
    return {
        "author": card.get("author"),
        "created": str(card.get("created") or ""),
        "metrics": section(card, "metrics"),
        "params": section(card, "params"),
        "signed": bool(artifact.get("signed_by")),
        "signer": ",".join(
            f"{k}:{v}" for k, v in sorted((artifact.get("signed_by") or {}).items())
        ),
        "uses": {str(d.get("path")): str(d.get("md5", "")) for d in deps if isinstance(d, dict)},
    }
