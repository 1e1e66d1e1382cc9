"""The connection side of `modelreg serve`: what a pod behind a Service needs from its HTTP server.

- A client gets `Limits.header_timeout` seconds to send a request's headers (on a new connection,
  and from the first byte of each next request on a kept-alive one): a slowloris client is
  answered 408 and closed instead of holding a connection for ever. uvicorn times out idle
  keep-alives only.
- On SIGTERM (what the kubelet sends before it kills a pod) the server fails readiness at once and
  keeps serving for `drain_seconds`, the time endpoints take to stop sending it traffic; then it
  stops accepting, finishes what it accepted, and exits. SIGINT (Ctrl-C) skips the drain.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def timed_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    class HeaderTimedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            body = json.dumps(
                {"error": f"the request's headers did not arrive within {header_timeout:g} s"}
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            self.transport.close()

    return HeaderTimedProtocol


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM: NOT_READY is called at once, the listener stays open
    DRAIN_SECONDS more, then the usual graceful shutdown (in-flight requests finish)."""

    def __init__(
        self, config: uvicorn.Config, drain_seconds: float, not_ready: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.not_ready = not_ready
        self.draining_since: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.draining_since is None and self.drain_seconds > 0:
            self.not_ready()
            self.draining_since = time.monotonic()
            return
        self.not_ready()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if (
            self.draining_since is not None
            and time.monotonic() - self.draining_since >= self.drain_seconds
        ):
            self.should_exit = True
        return await super().on_tick(counter)
