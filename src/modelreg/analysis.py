"""`modelreg analyze`: judge a running canary on Prometheus, with the policy of its environment
(`environments.ENV.canary` in modelreg.yaml), over modelreg's own metrics.

Each measurement runs every check's PromQL at one moment and evaluates its condition here (not in
PromQL, so the record holds the value and the condition apart):

| check | candidate's value | condition |
| --- | --- | --- |
| requests | requests in the window | >= min_requests, else the traffic checks are inconclusive |
| stable_requests | the stable version's | >= min_requests, else the comparisons are inconclusive |
| success_rate | non-5xx answers / all | >= min_success_rate |
| success_vs_stable | the same | >= stable's - max_success_drop |
| client_errors_vs_stable | 4xx answers / all | <= stable's + max_client_error_rise |
| p99 | p99 latency, seconds | <= max_p99_seconds |
| p99_vs_stable | the same | <= max(stable's * max_p99_ratio, stable's + P99_NOISE) |
| bytes | pods reporting the version with another SHA-256 than its card's | == 0 (key) |
| pods | pods reporting the version | >= the canary's replicas |
| (checks) | the user's query | <= max or >= min; no value: inconclusive (key: true: key) |

A measurement fails when a check fails, is inconclusive when none failed and one could not be
judged, and passes otherwise. The analysis (Argo Rollouts' model) takes `count` measurements
`interval` apart; it fails as soon as more than `failure_limit` measurements failed or a key check
failed (a pod serving other bytes is never tolerated), passes when every other measurement passed,
and is inconclusive otherwise.

`record` keeps an analysis as a commit on the deploy branch: trailers for listing, the whole record
as `.modelreg/<model>/analyses/<env>.json` in its tree (`target.analysis_records` reads them back).
A commit rather than a git note: notes are neither fetched nor pushed by default (a CI clone would
not see the verdict a step is gated on), and a commit on the branch lands through the same
compare-and-swap as the step it gates, in one order with it.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelreg import canary, git, prometheus, target
from modelreg.card import section
from modelreg.config import CONFIG_FILE, Canary, duration_seconds
from modelreg.errors import DeployError, ModelregError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.target import Landing, Snapshot
from modelreg.trailers import message as trailers_message
from modelreg.verdict import FAILED, INCONCLUSIVE, PASSED, check_line
from modelreg.versions import resolve

P99_NOISE = 0.005  # seconds: a p99 this close to the stable one's is not judged slower
MAX_COUNT = 1000
MAX_INTERVAL = 3600


@dataclass(frozen=True)
class Check(JsonFields):
    """One check of one measurement."""

    name: str
    query: str
    value: float | None
    condition: str  # e.g. ">= 0.99", ">= stable - 0.01 = 0.985"
    outcome: str  # passed, failed, inconclusive
    stable_query: str = ""
    stable: float | None = None
    key: bool = False  # failing, it fails the analysis alone (the bytes check; `key: true` checks)

    def line(self) -> str:
        return check_line(self.name, self.value, self.condition, self.outcome)


@dataclass(frozen=True)
class Measurement(JsonFields):
    at: float
    verdict: str
    checks: list[Check]

    def first(self, outcome: str) -> Check | None:
        return next((c for c in self.checks if c.outcome == outcome), None)

    @property
    def key_failed(self) -> Check | None:
        return next((c for c in self.checks if c.key and c.outcome == FAILED), None)


@dataclass(frozen=True)
class Analysis(JsonFields):
    model: str
    env: str
    candidate: str
    tag: str
    stable: str
    weight: int
    prometheus: str
    window: str
    interval: str
    count: int
    failure_limit: int
    policy_blob: str  # the blob of modelreg.yaml the policy was read from
    policy_source: str
    started: float
    finished: float
    by: str
    verdict: str
    summary: str  # one line: the failing (or inconclusive) measurement, or what passed
    measurements: list[Measurement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: an infinite value (a p99 past the last bucket) is Prometheus' `+Inf`."""
        data = dict(self.__dict__)
        data["measurements"] = [
            {
                **m.__dict__,
                "checks": [{k: _finite(v) for k, v in c.to_json().items()} for c in m.checks],
            }
            for m in self.measurements
        ]
        return data


def _finite(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def analyze(
    registry: Registry,
    env: str,
    model: str | None,
    url: str,
    interval: str | None = None,
    count: int | None = None,
    on_measurement: Callable[[int, Measurement], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Analysis:
    """Measure the canary of MODEL running in ENV on the Prometheus at URL, COUNT times INTERVAL
    apart (default: the policy's), and judge it."""
    url = prometheus.check_url(url)
    policy = registry.config.env(env).canary
    interval = interval or policy.interval
    pause = duration_seconds(interval, "--interval")
    if pause > MAX_INTERVAL:
        raise ModelregError(f"--interval {interval}: at most 1h")
    count = policy.count if count is None else count
    if not 1 <= count <= MAX_COUNT:
        raise ModelregError(f"--count {count}: from 1 to {MAX_COUNT}")
    running = canary.running(registry, env, model)
    card = resolve(registry, running.tag).card
    sha256 = str(section(card, "artifact").get("sha256", ""))
    queries = Queries(
        policy,
        registry.config.env(env).namespace,
        running.model,
        running.candidate,
        running.stable,
        sha256,
        canary.replicas(registry, env, running.weight),
    )
    started = time.time()
    measurements: list[Measurement] = []
    for number in range(1, count + 1):
        if number > 1:
            sleep(pause)
        measured = queries.measure(url)
        measurements.append(measured)
        if on_measurement is not None:
            on_measurement(number, measured)
        failed = sum(m.verdict == FAILED for m in measurements)
        if failed > policy.failure_limit or measured.key_failed is not None:
            break
    verdict, summary = judge(measurements, policy.failure_limit, count)
    return Analysis(
        model=running.model,
        env=env,
        candidate=running.candidate,
        tag=running.tag,
        stable=running.stable,
        weight=running.weight,
        prometheus=url,
        window=policy.window,
        interval=interval,
        count=count,
        failure_limit=policy.failure_limit,
        policy_blob=_policy_blob(registry),
        policy_source=registry.policy.describe(),
        started=started,
        finished=time.time(),
        by=_who(registry),
        verdict=verdict,
        summary=summary,
        measurements=measurements,
    )


def record(registry: Registry, analysis: Analysis, push: bool = False) -> str:
    """Commit ANALYSIS to the deploy branch; its commit id. Refused when the
    canary moved since it was measured (another candidate, or another weight)."""
    env, name = analysis.env, analysis.model
    record_json = json.dumps(analysis.to_json(), indent=2, sort_keys=True, allow_nan=False)
    body = (record_json + "\n").encode()

    def attempt(snapshot: Snapshot) -> Landing[str]:
        running = canary.require_running(snapshot.records, env, name)
        if (running.candidate, running.weight) != (analysis.candidate, analysis.weight):
            raise DeployError(
                f"the canary moved while it was analysed (now {running.tag} at {running.weight}%, "
                f"measured {analysis.candidate} at {analysis.weight}%): nothing recorded"
            )
        title = f"Analysis of {running.tag} in {env} at {running.weight}%: {analysis.verdict}"
        trailers = [
            ("Action", "analysis"),
            ("Model", name),
            ("Version", running.candidate),
            ("Env", env),
            ("Tag", running.tag),
            ("Previous-Version", running.stable),
            ("Weight", str(running.weight)),
            ("Verdict", analysis.verdict),
            ("Prometheus", analysis.prometheus),
            ("Window", analysis.window),
            ("Policy-Blob", analysis.policy_blob),
            ("Reason", analysis.summary),
        ]
        commit = git.build_commit(
            registry.root,
            snapshot.at.commit,
            {target.analysis_path(name, env): body},
            trailers_message(title, trailers),
        )
        return Landing(commit, commit, title)

    return target.land(registry, name, push, attempt)


def judge(measurements: list[Measurement], failure_limit: int, count: int) -> tuple[str, str]:
    """The verdict of the measurements, and a line that says why."""
    failed = [m for m in measurements if m.verdict == FAILED]
    key = next((m for m in measurements if m.key_failed is not None), None)
    if key is not None:
        check = key.key_failed
        assert check is not None
        return FAILED, (
            f"{check.line()} (measurement {measurements.index(key) + 1} of {count}; a key "
            "check fails the analysis alone)"
        )
    if len(failed) > failure_limit:
        worst = failed[-1]
        check = worst.first(FAILED)
        assert check is not None
        return FAILED, (
            f"{check.line()} (measurement {measurements.index(worst) + 1} of {count}; "
            f"{len(failed)} failed, {failure_limit} tolerated)"
        )
    unsure = [m for m in measurements if m.verdict == INCONCLUSIVE]
    if unsure:
        check = unsure[-1].first(INCONCLUSIVE)
        assert check is not None
        return INCONCLUSIVE, (
            f"{check.line()} (measurement {measurements.index(unsure[-1]) + 1} of {count})"
        )
    return PASSED, f"{len(measurements) - len(failed)} of {count} measurements passed" + (
        f" ({len(failed)} failed, {failure_limit} tolerated)" if failed else ""
    )


@dataclass(frozen=True)
class Queries:
    """The PromQL of one canary's checks."""

    policy: Canary
    namespace: str
    model: str
    candidate: str
    stable: str
    sha256: str
    pods: int

    def selector(self, version: str, more: str = "") -> str:
        labels = [("model", self.model), ("version", version), ("namespace", self.namespace)]
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        return "{" + text + (f",{more}" if more else "") + "}"

    def requests(self, version: str) -> str:
        window = self.policy.window
        return f"sum(increase(modelreg_requests_total{self.selector(version)}[{window}]))"

    def ratio(self, version: str, codes: str) -> str:
        """The share of VERSION's answers whose code matches CODES (a label matcher)."""
        window = self.policy.window
        part = self.selector(version, codes)
        return (
            f"(sum(rate(modelreg_requests_total{part}[{window}])) or vector(0)) / "
            f"sum(rate(modelreg_requests_total{self.selector(version)}[{window}]))"
        )

    def p99(self, version: str) -> str:
        return (
            "histogram_quantile(0.99, sum by (le) (rate(modelreg_request_duration_seconds_bucket"
            f"{self.selector(version)}[{self.policy.window}])))"
        )

    def measure(self, url: str) -> Measurement:
        at = time.time()
        policy = self.policy

        def ask(promql: str) -> float | None:
            return prometheus.query(url, promql, at)

        checks: list[Check] = []
        requests = ask(self.requests(self.candidate))
        stable_requests = ask(self.requests(self.stable))
        enough = requests is not None and requests >= policy.min_requests
        enough_stable = stable_requests is not None and stable_requests >= policy.min_requests
        floor = f">= {policy.min_requests} (min_requests)"
        checks.append(Check("requests", self.requests(self.candidate), requests, floor,
                            PASSED if enough else INCONCLUSIVE))  # fmt: skip
        checks.append(Check("stable_requests", self.requests(self.stable), stable_requests, floor,
                            PASSED if enough_stable else INCONCLUSIVE))  # fmt: skip

        def against_stable(
            name: str,
            query: Callable[[str], str],
            value: float | None,
            sign: str,
            bound_of: Callable[[float], float],
            condition: str,
        ) -> Check:
            """NAME: the candidate's VALUE against a bound derived from the stable version's value
            (CONDITION says how, with `{stable}`); judged only when both had enough traffic."""
            judged = enough and enough_stable
            stable_q = query(self.stable)
            stable = ask(stable_q) if judged else None
            shown = "stable" if stable is None else f"stable {stable:.6g}"
            bound = None if stable is None else bound_of(stable)
            return _compare(name, query(self.candidate), value, sign, bound,
                            condition.format(stable=shown), judged, stable_q, stable)  # fmt: skip

        def success(version: str) -> str:
            return self.ratio(version, 'code!~"5.."')

        def client_errors(version: str) -> str:
            return self.ratio(version, 'code=~"4.."')

        rate = ask(success(self.candidate)) if enough else None
        errors = ask(client_errors(self.candidate)) if enough else None
        p99 = ask(self.p99(self.candidate)) if enough else None
        drop, rise, ratio = (
            policy.max_success_drop,
            policy.max_client_error_rise,
            policy.max_p99_ratio,
        )
        checks += [
            _compare("success_rate", success(self.candidate), rate, ">=", policy.min_success_rate,
                     f">= {policy.min_success_rate:g} (min_success_rate)", enough),
            against_stable("success_vs_stable", success, rate, ">=", lambda s: s - drop,
                           f">= {{stable}} - {drop:g} (max_success_drop)"),
            against_stable("client_errors_vs_stable", client_errors, errors, "<=",
                           lambda s: s + rise, f"<= {{stable}} + {rise:g} (max_client_error_rise)"),
            _compare("p99", self.p99(self.candidate), p99, "<=", policy.max_p99_seconds,
                     f"<= {policy.max_p99_seconds:g}s (max_p99_seconds)", enough),
            against_stable("p99_vs_stable", self.p99, p99, "<=",
                           lambda s: max(s * ratio, s + P99_NOISE),
                           f"<= {{stable}} x {ratio:g} (max_p99_ratio)"),
        ]  # fmt: skip
        if policy.check_bytes:
            checks.extend(self._bytes(ask))
        for own in policy.checks:
            promql = fill(own.query, self.model, self.candidate, self.namespace)
            value = ask(promql)
            if own.max is not None:
                found = _compare(own.name, promql, value, "<=", own.max, f"<= {own.max:g}", True)
            else:
                found = _compare(own.name, promql, value, ">=", own.min, f">= {own.min:g}", True)
            checks.append(dataclasses.replace(found, key=own.key))
        outcomes = {c.outcome for c in checks}
        verdict = next((o for o in (FAILED, INCONCLUSIVE) if o in outcomes), PASSED)
        return Measurement(at, verdict, checks)

    def _bytes(self, ask: Callable[[str], float | None]) -> list[Check]:
        other_q = f"count(modelreg_model_info{self.selector(self.candidate, self._other_bytes())})"
        pods_q = f"count(modelreg_model_info{self.selector(self.candidate)})"
        other = ask(other_q) or 0.0  # no series: no pod serves other bytes
        pods = ask(pods_q) or 0.0
        return [
            Check(
                "bytes",
                other_q,
                other,
                f"== 0 (pods whose SHA-256 is not {self.sha256[:12]}...)",
                PASSED if other == 0 else FAILED,
                key=True,  # never right, however few pods and however briefly
            ),
            Check(
                "pods",
                pods_q,
                pods,
                f">= {self.pods} (the canary's replicas)",
                PASSED if pods >= self.pods else FAILED,
            ),  # fmt: skip
        ]

    def _other_bytes(self) -> str:
        return f'sha256!="{_escape(self.sha256)}"'


def fill(query: str, model: str, version: str, namespace: str) -> str:
    """A check's QUERY with `{model}`, `{version}` and `{namespace}` put in (label values, escaped);
    every other brace is PromQL's own."""
    for token, value in (("{model}", model), ("{version}", version), ("{namespace}", namespace)):
        query = query.replace(token, _escape(value))
    return query


def _compare(
    name: str,
    query: str,
    value: float | None,
    sign: str,
    bound: float | None,
    condition: str,
    judged: bool,
    stable_query: str = "",
    stable: float | None = None,
) -> Check:
    if not judged or value is None or bound is None:
        outcome = INCONCLUSIVE
    elif sign == ">=":
        outcome = PASSED if value >= bound else FAILED
    else:
        outcome = PASSED if value <= bound else FAILED
    return Check(name, query, value, condition, outcome, stable_query, stable)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _policy_blob(registry: Registry) -> str:
    commit = registry.policy.commit
    if commit is None:
        path = registry.root / CONFIG_FILE
        return target.blob_id(path.read_bytes()) if path.exists() else ""
    found = git.object_ids(registry.root, [f"{commit}:{CONFIG_FILE}"])[0]
    return found or ""


def _who(registry: Registry) -> str:
    try:
        return git.identity(registry.root)
    except ModelregError:
        return getpass.getuser()
