"""The HTTP (and optionally gRPC) server around one TorchModel, built on the KServe SDK's app.

KServe is used as is for the Open Inference Protocol v2 endpoints, health and `/metrics`; this
module adds what a registry needs and KServe lacks: the bind address (KServe hard-codes 0.0.0.0),
`model_version` in metadata and readiness, `/versions/{v}` paths (KServe answers 501), a body size
limit, 400 with `{"error": ...}` for a body that is not JSON (FastAPI answers 422 with `detail`),
Prometheus metrics by model, version and status code (every answer counted, 5xx included) with an
info metric naming the artifact's SHA-256, and the limits a server facing a network needs
(`Limits`): a body over the limit is read and discarded up to a bound before its 413 (so that a
client sending the whole body first reads the answer), a body that stalls gets 408, more requests in
flight than the limit get 503 at once, and a model that raises answers a short 500 with a request id
(the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from modelreg.refs import parse_tag
from modelreg.serving.limits import DEFAULT, DISCARD_FACTOR, Limits
from modelreg.serving.runtime import ModelFailure, TorchModel

MAX_NAME = 100  # longest model name a URL may carry (modelreg's own names are DNS labels: 53)
MAX_DEPTH = 32  # deepest JSON nesting of a request body (the protocol needs 4)
OTHER = "other"  # the one `model` label of requests for models this server does not run
VERSIONED = re.compile(r"^/v2/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")
MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)")


@contextlib.contextmanager
def _argv_for_kserve() -> Iterator[None]:
    """kserve.model_server parses sys.argv when imported: show it none of modelreg's flags."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _metrics(model: TorchModel, deprecated: Deprecated | None = None) -> tuple[Any, Any]:
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram

    requests = Counter(
        "modelreg_requests",
        "Inference protocol requests",
        ["model", "version", "code"],
        registry=REGISTRY,
    )
    latency = Histogram(
        "modelreg_request_duration_seconds",
        "Time to answer an inference protocol request",
        ["model", "version"],
        registry=REGISTRY,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )
    info = Gauge(
        "modelreg_model_info",
        "The model version this server runs",
        ["model", "version", "sha256"],
        registry=REGISTRY,
    )
    info.labels(model.name, model.version, model.sha256).set(1)
    sunset = Gauge(
        "modelreg_model_deprecated",
        "1 when the version served is deprecated (its sunset in the label)",
        ["model", "version", "sunset"],
        registry=REGISTRY,
    )
    sunset.labels(model.name, model.version, deprecated.sunset if deprecated else "").set(
        1 if deprecated else 0
    )
    return requests, latency


@dataclass(frozen=True)
class Deprecated:
    """The served version is deprecated: since (ISO 8601 UTC), sunset (YYYY-MM-DD), replacement (a
    tag)."""

    since: str
    sunset: str
    replacement: str = ""

    def headers(self, model: str) -> list[tuple[bytes, bytes]]:
        """RFC 9745's Deprecation (@epoch seconds), RFC 8594's Sunset (an HTTP-date), and a
        successor-version link when the replacement is a version of the same model."""
        import calendar
        import datetime
        from email.utils import formatdate

        since = calendar.timegm(
            datetime.datetime.fromisoformat(self.since.replace("Z", "+00:00")).utctimetuple()
        )
        sunset = calendar.timegm(datetime.date.fromisoformat(self.sunset).timetuple())
        found = [
            (b"deprecation", f"@{since}".encode()),
            (b"sunset", formatdate(sunset, usegmt=True).encode()),
        ]
        successor = parse_tag(self.replacement, None)
        if successor is not None and successor.model == model:
            version = successor.version
            found.append(
                (
                    b"link",
                    f'</v2/models/{model}/versions/{version}>; rel="successor-version"'.encode(),
                )
            )
        return found


CLOSE = {"connection": "close"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: versioned paths, the body limits, admission, and the request metrics."""

    def __init__(
        self,
        app: Any,
        model: TorchModel,
        limits: Limits,
        metrics: tuple[Any, Any],
        deprecated: Deprecated | None = None,
    ) -> None:
        self.app = app
        self.model = model
        self.limits = limits
        self.deprecation = deprecated.headers(model.name) if deprecated else []
        self.inflight = 0
        self.requests, self.latency = metrics

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]  # what an exception past every handler becomes

        named = MODEL_PATH.match(scope["path"])
        flagged = self.deprecation if named and named["name"] == self.model.name else []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if flagged:
                    message = {**message, "headers": [*message.get("headers", []), *flagged]}
            await send(message)

        admitted = scope["path"].endswith("/infer")
        if admitted and self.inflight >= self.limits.max_inflight:
            admitted = False
            response = _error(
                503,
                f"over {self.limits.max_inflight} requests in flight: retry",
                {"retry-after": "1"},
            )
        else:
            response = self._refuse(scope)
        self.inflight += admitted
        try:
            body = None
            if response is None and scope.get("method") in ("POST", "PUT"):
                body, response = await self._read_body(scope, receive)
            if response is not None:
                await response(scope, receive, sending)
            else:
                await self.app(
                    _json_by_default(self._unversioned(scope)),
                    receive if body is None else _replay(body),
                    sending,
                )
        finally:
            self.inflight -= admitted
            self._count(scope["path"], status[0], started)

    def _count(self, path: str, status: int, started: float) -> None:
        match = MODEL_PATH.match(path)
        if match:  # labelled by the served model only: a URL cannot grow /metrics
            ours = match["name"] == self.model.name
            name, version = (self.model.name, self.model.version) if ours else (OTHER, "")
            self.requests.labels(name, version, str(status)).inc()
            self.latency.labels(name, version).observe(time.perf_counter() - started)

    async def _read_body(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]]
    ) -> tuple[bytes | None, Any]:
        """The whole body (at most max_body bytes, however it is sent: chunked too), or the answer
        that refuses it: 413 over the limit (the rest read and dropped up to the discard bound), 408
        when it stalls, 400 for JSON nested deeper than MAX_DEPTH."""
        parts: list[bytes] = []
        seen, limit = 0, self.limits.max_body
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.limits.body_timeout)
            except asyncio.TimeoutError:
                return None, _error(
                    408, f"the request body stalled for {self.limits.body_timeout:g} s", CLOSE
                )
            if message["type"] == "http.disconnect":
                return b"", None
            chunk = message.get("body", b"")
            seen += len(chunk)
            more = message.get("more_body", False)
            if seen > limit:
                if more and seen <= limit * DISCARD_FACTOR and not _expects_continue(scope):
                    parts.clear()
                    continue
                return None, _error(413, f"request body over {limit} bytes", CLOSE)
            parts.append(chunk)
            if not more:
                break
        body = b"".join(parts)
        if _too_deep(body):
            return None, _error(400, f"the body nests JSON deeper than {MAX_DEPTH} levels")
        return body, None

    def _refuse(self, scope: dict[str, Any]) -> Any:
        named = MODEL_PATH.match(scope["path"])
        if named and len(named["name"]) > MAX_NAME:
            return _error(404, f"no model with a name of {len(named['name'])} characters here")
        versioned = VERSIONED.match(scope["path"])
        if (
            versioned
            and versioned["name"] == self.model.name
            and versioned["version"] != self.model.version
        ):
            return _error(
                404,
                f"model {self.model.name} has no version {versioned['version']} here "
                f"(this server runs {self.model.version})",
            )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.isdigit():
            return _error(400, "the Content-Length header is not a number", CLOSE)
        if (
            length is not None
            and int(length) > self.limits.max_body
            and (int(length) > self.limits.max_body * DISCARD_FACTOR or _expects_continue(scope))
        ):
            return _error(413, f"request body over {self.limits.max_body} bytes", CLOSE)
        return None

    def _unversioned(self, scope: dict[str, Any]) -> dict[str, Any]:
        versioned = VERSIONED.match(scope["path"])
        if not versioned:
            return scope
        path = f"/v2/models/{versioned['name']}{versioned['rest'] or ''}"
        return {**scope, "path": path, "raw_path": path.encode()}


def _replay(body: bytes) -> Callable[[], Awaitable[Any]]:
    """A `receive` that hands the app the body already read, then waits as the real one would."""
    sent = [False]

    async def receiving() -> Any:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # nothing more comes: the app never asks past the body

    return receiving


JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
BRACKET_PAIR = re.compile(rb"\[\]|\{\}")
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _too_deep(body: bytes) -> bool:
    """True when the JSON in BODY nests deeper than MAX_DEPTH, found without parsing it: strings
    dropped, brackets kept, innermost pairs removed one level per pass (C-speed passes, at most
    MAX_DEPTH of them). Unbalanced brackets are left to the JSON parser's own error."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    brackets = JSON_STRING.sub(b"", body).translate(None, NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        reduced = BRACKET_PAIR.sub(b"", brackets)
        if not reduced or reduced == brackets:
            return False
        brackets = reduced
    return True


def _expects_continue(scope: dict[str, Any]) -> bool:
    """The client waits for `100 Continue` before it sends the body: refuse without reading it."""
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers") or []
    )


def _json_by_default(scope: dict[str, Any]) -> dict[str, Any]:
    """An infer request without a content type and without the binary-data header is JSON (what
    stock clients such as tritonclient send); KServe would take it for raw bytes."""
    headers = scope.get("headers") or []
    names = {name.lower() for name, _ in headers}
    if (
        not scope["path"].endswith("/infer")
        or b"content-type" in names
        or b"inference-header-content-length" in names
    ):
        return scope
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def build_app(
    model: TorchModel, limits: Limits = DEFAULT, deprecated: Deprecated | None = None
) -> Any:
    """KServe's FastAPI app serving MODEL (loaded already), with the additions above."""
    with _argv_for_kserve():
        from kserve import model_server
        from kserve.model_repository import ModelRepository
        from kserve.protocol.rest.server import RESTServer
    from fastapi.exceptions import RequestValidationError

    repository = ModelRepository()
    repository.update(model)
    server = model_server.ModelServer(registered_models=repository, enable_grpc=False)
    app = model_server.app
    _add_routes(app, model)  # before KServe's: the first matching route answers
    rest = RESTServer(
        model_server.FASTAPI_APP_IMPORT_STRING,
        server.dataplane,
        server.model_repository_extension,
        0,
    )
    rest.create_application()
    app.add_exception_handler(
        RequestValidationError,
        lambda request, exc: _error(400, f"the body is not an inference request: {_first(exc)}"),
    )
    app.add_exception_handler(
        ModelFailure,
        lambda request, exc: _error(
            500, str(exc), {"x-request-id": getattr(exc, "request_id", "")}
        ),
    )
    app.add_middleware(
        Guard,
        model=model,
        limits=limits,
        metrics=_metrics(model, deprecated),
        deprecated=deprecated,
    )
    app.state.modelreg_server = server
    app.state.modelreg_draining = False
    return app


def _first(exc: Any) -> str:
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return "invalid"
    where = ".".join(str(p) for p in errors[0].get("loc", []) if p != "body")
    return f"{errors[0].get('msg', 'invalid')}" + (f" at {where}" if where else "")


def _add_routes(app: Any, model: TorchModel) -> None:
    def metadata(model_name: str) -> Any:
        if model_name != model.name:
            return _error(404, f"Model with name {model_name} does not exist.")
        return {
            "name": model.name,
            "versions": [model.version],
            "platform": "pytorch_torchscript",
            "inputs": model.get_input_types(),
            "outputs": model.get_output_types(),
        }

    def ready(model_name: str) -> Any:
        if model_name != model.name:
            return _error(404, f"Model with name {model_name} does not exist.")
        if not model.ready or app.state.modelreg_draining:
            return _error(503, f"Model with name {model_name} is not ready.")
        return {"name": model.name, "ready": True, "model_version": model.version}

    def server_ready() -> Any:
        if (
            not model.ready or app.state.modelreg_draining
        ):  # loading, or draining after SIGTERM: still serving
            return _error(503, "not ready")
        return {"ready": True}

    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/ready", ready, methods=["GET"])


def serve(
    model: TorchModel,
    host: str,
    port: int,
    grpc_port: int | None = None,
    limits: Limits = DEFAULT,
    on_ready: Callable[[str], None] | None = None,
    deprecated: Deprecated | None = None,
) -> None:
    """Load MODEL, then serve it on HOST:PORT (and gRPC on HOST:GRPC_PORT) until SIGINT, or SIGTERM
    and the drain."""
    import logging
    import warnings

    import uvicorn

    from modelreg.serving.transport import DrainingServer, timed_protocol

    model.load()
    app = build_app(model, limits, deprecated)
    logging.getLogger("kserve.trace").setLevel(
        logging.WARNING
    )  # a log line per request costs more than the request
    warnings.filterwarnings("ignore", module="fastapi")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        http=timed_protocol(limits.header_timeout),
        timeout_keep_alive=int(limits.keep_alive),
        limit_concurrency=limits.max_connections,
    )
    http = DrainingServer(
        config,
        limits.drain_seconds,
        not_ready=lambda: setattr(app.state, "modelreg_draining", True),
    )

    async def main() -> None:
        grpc = _grpc_server(app, host, grpc_port) if grpc_port else None
        grpc_task = asyncio.create_task(grpc.start(4)) if grpc else None
        if on_ready is not None:
            on_ready(f"http://{host}:{port}" + (f", grpc {host}:{grpc_port}" if grpc_port else ""))
        await http.serve()
        if grpc is not None and grpc_task is not None:
            await grpc.stop()
            grpc_task.cancel()

    asyncio.run(main())


def _grpc_server(app: Any, host: str, port: int) -> Any:
    """KServe's gRPC server, bound to HOST (it binds every interface itself)."""
    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer

    class BoundGRPCServer(GRPCServer):
        async def start(self, max_workers: int) -> None:
            self._server = aio.server()
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                servicer, self._server
            )
            self._server.add_insecure_port(f"{host}:{port}")
            await self._server.start()
            await self._server.wait_for_termination()

    server = app.state.modelreg_server
    return BoundGRPCServer(
        port, server.dataplane, server.model_repository_extension, kwargs={}, grace_period=5
    )
