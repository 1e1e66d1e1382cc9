"""site, ui: the registry as web pages, generated from git."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from modelreg.cli.output import emit_json, handle_errors, json_option, note


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("modelreg-site"),
    show_default=True,
    help="Folder to write the site into: new, empty, or a site written before (replaced as a "
    "whole).",
)
@click.option(
    "--if-published",
    is_flag=True,
    help="Write nothing unless modelreg.yaml says `site: {publish: true}`.",
)
@json_option()
@click.pass_obj
@handle_errors
def site(repo: str, output: Path, if_published: bool, as_json: bool) -> None:
    """Write a static site of the registry: models, versions, metric plots, manifests, history.

    HTML, CSS and a little JavaScript, everything inside the folder (no CDN, no build step):
    open index.html, or publish the folder (GitHub Pages: `site: {publish: true}` in modelreg.yaml).

    Example: modelreg site -o public/
    """
    from modelreg.handle import open_registry
    from modelreg.sitegen import build_site

    registry = open_registry(repo)
    if if_published and not registry.config.site.publish:
        return note(
            "The site is not published (site.publish in modelreg.yaml is false): nothing written."
        )
    result = build_site(registry, output)
    if as_json:
        return emit_json(result.to_json())
    click.echo(
        f"Wrote {result.pages} pages ({result.versions} versions) to {result.path} in "
        f"{result.seconds:.2f} s: "
        f"open {Path(result.path).resolve() / 'index.html'}"
    )


@click.command()
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the pages go (default: the git directory's modelreg/site).",
)
@click.pass_obj
@handle_errors
def ui(repo: str, port: int, output: Path | None) -> None:
    """Browse the registry on http://127.0.0.1:PORT; the pages are rebuilt when tags or branches
    change.

    Example: modelreg ui --port 8000
    """
    from modelreg import cache
    from modelreg.handle import open_registry
    from modelreg.sitegen import SiteResult, serve_site

    registry = open_registry(repo)
    folder = output or cache.path(registry.root, "site")

    def built(result: SiteResult, url: str) -> None:
        note(f"{url}  ({result.pages} pages in {result.seconds:.2f} s; Ctrl-C stops)")

    with contextlib.suppress(KeyboardInterrupt):
        serve_site(registry, folder, "127.0.0.1", port, on_build=built)
