"""A Prometheus HTTP API client for one thing: the value of an instant query (`/api/v1/query`).

Bounded: one request per query with a timeout, at most MAX_BODY bytes of answer read. A query
whose result is empty (no series matched) has no value (None); a query that returns more than one
series is an error (the analysis' queries aggregate to one number).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request

from modelreg.errors import ModelregError

TIMEOUT = 10.0  # seconds per query
MAX_BODY = 1024 * 1024


class PrometheusError(ModelregError):
    """Prometheus could not be asked, or answered something that is not one number."""


def check_url(url: str) -> str:
    """The base URL, checked: http(s), a host, no query string."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
        raise PrometheusError(
            f"--prometheus {url[:80]!r}: expected the server's base URL, such as "
            "http://prometheus.monitoring:9090"
        )
    return url.strip().rstrip("/")


def query(url: str, promql: str, at: float | None = None) -> float | None:
    """The value of PROMQL evaluated at AT (default: now) on the Prometheus at URL."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    request = urllib.request.Request(
        f"{url}/api/v1/query?{urllib.parse.urlencode(params)}",
        headers={"Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 (http(s) only)
            body = answer.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_BODY + 1)
        raise PrometheusError(
            f"Prometheus refused {promql!r}: {_error_of(body, exc.code)}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"cannot reach Prometheus at {url}: {reason}") from None
    if len(body) > MAX_BODY:
        raise PrometheusError(f"Prometheus answered {promql!r} with over {MAX_BODY} bytes")
    return _value(body, promql)


def _error_of(body: bytes, code: int) -> str:
    try:
        return str(json.loads(body).get("error", f"HTTP {code}"))[:300]
    except (ValueError, AttributeError):
        return f"HTTP {code}"


def _value(body: bytes, promql: str) -> float | None:
    try:
        data = json.loads(body)
        if data.get("status") != "success":
            raise PrometheusError(f"Prometheus failed {promql!r}: {data.get('error', '?')}")
        result = data["data"]
        kind, found = result["resultType"], result["result"]
        if kind == "scalar":
            return _number(found[1])
        if kind != "vector":
            raise PrometheusError(f"{promql!r} returned a {kind}, expected one number")
        if not found:
            return None
        if len(found) > 1:
            raise PrometheusError(
                f"{promql!r} returned {len(found)} series, expected one number (aggregate it, "
                "e.g. with sum(...))"
            )
        return _number(found[0]["value"][1])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise PrometheusError(f"Prometheus answered {promql!r} with something unreadable") from None


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value
