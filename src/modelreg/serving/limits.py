"""What one `modelreg serve` accepts, and the defaults: the one place they are written (the
server reads them, and `modelreg serve`'s options show them). No import of torch or KServe here:
the CLI reads it to build its options."""

from __future__ import annotations

from dataclasses import dataclass

DISCARD_FACTOR = 4  # the most of an oversized body read, in max_body, before its 413


@dataclass(frozen=True)
class Limits:
    """What one server accepts. DISCARD_FACTOR * max_body: the most of an oversized body read (and
    thrown away) so that its sender, still writing, reads the 413 rather than a reset."""

    max_body: int = 8 * 1024 * 1024
    max_inflight: int = 64  # inference requests admitted at once; past it: 503 at once
    max_connections: int = 1024  # open connections; past it uvicorn answers 503 and closes
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 10.0  # seconds the body may stall between two reads
    # idle seconds a kept-alive connection waits (longer than common load balancers' 60)
    keep_alive: float = 65.0
    drain_seconds: float = 0.0  # after SIGTERM: not ready, still serving, this long before stopping


DEFAULT = Limits()
