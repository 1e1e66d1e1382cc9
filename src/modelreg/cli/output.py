"""Printing: tables for people, JSON for scripts, dates in local-free UTC."""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from modelreg.errors import ModelregError


class InternalError(click.ClickException):
    """A bug in modelreg: one line, exit 3."""

    exit_code = 3


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one stderr line (exit 1) and bugs into exit 3, as pre-commit
    does."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ModelregError as exc:
            raise click.ClickException(_one_line(str(exc))) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except (
            BrokenPipeError
        ):  # `modelreg history | head`: the reader left on purpose; stop quietly
            _quiet_stdout()
            raise SystemExit(1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        except Exception as exc:
            if os.environ.get("MODELREG_DEBUG"):
                traceback.print_exc()
            raise InternalError(
                f"internal error {type(exc).__name__}: {exc} "
                "(a bug in modelreg; MODELREG_DEBUG=1 shows the traceback)"
            ) from None

    return wrapper


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def when(timestamp: int) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M"
    )


def short(commit: str | None) -> str:
    return commit[:8] if commit else "-"


def who(author: str) -> str:
    return author.split(" <")[0] if author else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    click.echo("\n".join(lines))


def _finite(data: Any) -> Any:
    """JSON has no nan or infinity: a hand-made card may hold them; they are printed as strings."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def emit_json(data: Any) -> None:
    """Strict JSON (`allow_nan=False`): what any parser accepts."""
    click.echo(json.dumps(_finite(data), indent=2, sort_keys=False, default=str, allow_nan=False))


def note(message: str) -> None:
    """A remark for people, on stderr so that stdout stays parseable."""
    click.echo(message, err=True)


LARGE = 32 * 1024 * 1024


@contextlib.contextmanager
def byte_progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for large transfers, shown only on a terminal; else no callback."""
    if total < LARGE or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(
        length=total, label=label, file=sys.stderr, show_percent=True, show_eta=True
    ) as bar:
        yield bar.update


def json_option(
    help: str = "Print the result as JSON.",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--json` flag every command has (as `as_json`), with what it prints."""
    return click.option("--json", "as_json", is_flag=True, help=help)
