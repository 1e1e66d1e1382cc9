"""The Jinja sandbox templates render in, with bounded cost.

Jinja's own sandbox stops attribute tricks but not arithmetic: `{{ 9 ** (9 ** 8) }}` runs for
hours, `{{ 'x' * 10**10 }}` asks for 10 GB, nested `range` loops never end. Here power,
repetition and formatting are checked before they run, every number handed to a call or a
filter is bounded, loops share one budget of iterations, the output has a size limit, and
(in the main thread) the whole render a deadline. Going over any bound is a `TemplateError`
that the renderer reports with the template and line.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_NUMBER = 1_000_000  # the largest number a call or filter argument may be
MAX_ITERATIONS = 1_000_000  # range() elements over one render
MAX_OUTPUT = 4 * 1024 * 1024  # characters of rendered text per template, and per repeated value
MAX_POWER_BITS = 4096
DEADLINE_SECONDS = 2.0
_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\d{5,}|\*)|%[-#0 +]*\d*\.(\d{5,}|\*)")


class LimitError(jinja2.TemplateError):
    """A template went over one of the bounds above."""


def _check_number(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
        raise LimitError(
            f"{what}: {value if len(str(value)) < 20 else 'a number'} is over the limit of "
            f"{MAX_NUMBER}"
        )


def _check_power(left: Any, right: Any) -> None:
    if (
        isinstance(left, (int, float))
        and isinstance(right, (int, float))
        and abs(left) > 1
        and right > 0
    ) and right * math.log2(abs(left)) > MAX_POWER_BITS:
        raise LimitError(
            f"power: {type(left).__name__} ** {type(right).__name__} would be over "
            f"{MAX_POWER_BITS} bits"
        )


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if (
            isinstance(seq, (str, list, tuple))
            and isinstance(times, int)
            and len(seq) * times > MAX_OUTPUT
        ):
            raise LimitError(
                f"repetition: {len(seq)} * {times} items is over the limit of {MAX_OUTPUT}"
            )
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_POWER_BITS
    ):
        raise LimitError(f"product: over {MAX_POWER_BITS} bits")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the bounds of this module."""

    intercepted_binops = frozenset({"**", "*", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.iterations = 0
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}

        def bounded_range(*args: int) -> range:
            steps = range(*args)
            self.iterations += len(steps)
            if self.iterations > MAX_ITERATIONS:
                raise LimitError(f"range: over {MAX_ITERATIONS} iterations in one render")
            return steps

        bounded_range.__name__ = "range"
        self.globals["range"] = bounded_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "%" and isinstance(left, str) and _FORMAT_WIDTH.search(left):
            raise LimitError("%-formatting: a width or precision over 4 digits")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for value in list(args) + list(kwargs.values()):
            _check_number(value, getattr(__obj, "__name__", "call"))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{:>999999999}'.format(x)` asks for a GB: refuse format specs with widths over 4
        digits."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and any(
            re.search(r"\d{5,}", spec) for spec in re.findall(r":([^{}]*)}", value.__self__)
        ):

            def refuse(*args: Any, **kwargs: Any) -> str:
                raise LimitError("str.format: a width or precision over 4 digits")

            return refuse
        return wrapped

    def render_bounded(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        """Render, stopping at MAX_OUTPUT characters and (main thread only) at the deadline."""
        self.iterations = 0
        parts: list[str] = []
        size = 0
        with _deadline(DEADLINE_SECONDS):
            for chunk in template.generate(context):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise LimitError(f"output: over {MAX_OUTPUT} characters")
                parts.append(chunk)
        return "".join(parts)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, refusing numeric arguments over MAX_NUMBER (`center(10**9)` would allocate a
    GB)."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in list(args[1:]) + list(kwargs.values()):
            _check_number(value, f"filter {name}")
        return func(*args, **kwargs)

    for attr in ("jinja_pass_arg",):  # keep @pass_context / @pass_environment markers
        if hasattr(func, attr):
            setattr(bounded, attr, getattr(func, attr))
    return bounded


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt the render after `seconds` with SIGALRM; a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise LimitError(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
