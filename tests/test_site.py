"""The static site: generated from git, browsable, safe. Driven in a real headless Chromium where
the machine has one (Debian's `chromium`; `.ci/run` installs it).

Invariants: every page a link names exists; a card value is shown as text and runs no script; no
secret from `.dvc/config.local` or the environment reaches a page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import MODELREG, Env, free_port, git, modelreg
from modelreg.deploy import deploy, rollback
from modelreg.marks import quarantine
from modelreg.register import RegisterRequest, register
from modelreg.sitegen import build_site

HOSTILE = (
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', "
    '\'yes\')"><script>document.title="pwned"</script>'
)
SECRET = "s3cr3t-AKIA-should-never-show"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def site_env(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    card = tmp_path / "card.yaml"
    card.write_text(
        yaml.safe_dump(
            {
                "description": HOSTILE,
                "signature": {
                    "inputs": [{"name": "features", "shape": [-1, 4], "dtype": "float32"}]
                },
            }
        )
    )
    for seed, auc in ((1, 0.81), (2, 0.86), (3, 0.84)):
        source = env.work / f"m{seed}" / "model.pt"
        source.parent.mkdir(parents=True)
        source.write_bytes(bytes([seed]) * 2048)
        register(
            env.registry,
            RegisterRequest(
                "churn",
                source,
                metrics=(f"auc={auc}", f"loss={1 - auc:.2f}"),
                message=f"run {seed}",
                card_file=card if seed == 1 else None,
            ),
        )
        deploy(env.registry, f"churn@v{seed}", "staging")
    deploy(env.registry, "churn@v2", "prod", action="promote")
    rollback(env.registry, env="staging")
    quarantine(env.registry, "churn@v3", "bad calibration")
    # secrets where a careless generator could find them: the site reads neither
    (env.root / ".dvc" / "config.local").write_text(
        f"['remote \"s3\"']\n    secret_access_key = {SECRET}\n"
    )
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return env


def test_the_site_has_every_page_and_link(site_env: Env, tmp_path: Path) -> None:
    result = build_site(site_env.registry, tmp_path / "site")
    out = Path(result.path)
    names = {p.name for p in out.iterdir()}
    assert {
        "index.html",
        "model-churn.html",
        "version-churn-v1.html",
        "version-churn-v3.html",
        "env-staging.html",
        "env-prod.html",
        "site.css",
        "site.js",
    } <= names
    for page in out.glob("*.html"):
        text = page.read_text()
        for link in re.findall(r'href="([^"#]+)"', text):
            assert link.startswith("http") or (out / link).exists(), (page.name, link)
        assert SECRET not in text and "<script>document" not in text
        assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from a CDN
    version = (out / "version-churn-v2.html").read_text()
    assert "&lt;img src=x onerror=" in version  # escaped, shown as text
    assert "deployment.yaml" in version and "diff against the version deployed before it" in version
    model = (out / "model-churn.html").read_text()
    assert model.count('<svg class="plot"') == 2  # auc and loss
    assert "quarantined" in (out / "index.html").read_text()
    assert "rollback" in (out / "env-staging.html").read_text()


def test_site_command_and_a_folder_that_is_not_a_site(site_env: Env, tmp_path: Path) -> None:
    done = modelreg(site_env.root, "site", "-o", str(tmp_path / "public"))
    assert done.returncode == 0 and "index.html" in done.stdout
    again = modelreg(
        site_env.root, "site", "-o", str(tmp_path / "public")
    )  # its own output: replaced
    assert again.returncode == 0 and (tmp_path / "public" / ".modelreg-site").is_file()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    (other / "index.html").write_text(
        "a page of mine"
    )  # issue #18: an index.html made it look like a site
    refused = modelreg(site_env.root, "site", "-o", str(other))
    assert (
        refused.returncode == 1
        and "did not write it" in refused.stderr
        and len(refused.stderr.splitlines()) == 1
    )
    assert (other / "notes.txt").read_text() == "keep me" and (
        other / "index.html"
    ).read_text() == "a page of mine"
    project = (
        tmp_path / "project"
    )  # another repository with a top-level index.html and uncommitted work
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "index.html").write_text("home")
    (project / "draft.md").write_text("uncommitted")
    (project / ".modelreg-site").write_text("even with the marker, a repository is never replaced")
    refused = modelreg(site_env.root, "site", "-o", str(project))
    assert refused.returncode == 1 and "is a git repository" in refused.stderr
    assert (project / ".git").is_dir() and (project / "draft.md").read_text() == "uncommitted"
    for inside in (".", str(site_env.root.parent)):  # the registry itself, or a folder holding it
        refused = subprocess.run(
            [MODELREG, "site", "-o", inside], cwd=site_env.root, capture_output=True, text=True
        )
        assert refused.returncode == 1 and "holds the registry" in refused.stderr, refused.stderr
    off = modelreg(site_env.root, "site", "--if-published", "-o", str(tmp_path / "pages"))
    assert (
        off.returncode == 0 and not (tmp_path / "pages").exists() and "not published" in off.stderr
    )


def test_ui_serves_and_rebuilds_when_refs_change(site_env: Env) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [MODELREG, "-C", str(site_env.root), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def page(name: str) -> str:
            import time

            deadline = time.monotonic() + 60
            while True:
                try:
                    return (
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=5)
                        .read()
                        .decode()
                    )
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.2)

        assert "churn" in page("index.html")
        git(
            site_env.root, "tag", "-a", "churn@v9", "-m", "by hand"
        )  # a new version: the pages follow
        import time

        deadline = time.monotonic() + 30
        while "v9" not in page("model-churn.html"):
            assert time.monotonic() < deadline, "the site was not rebuilt after the refs changed"
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def dom(url: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium)")
def test_a_real_browser_shows_the_site_and_runs_no_hostile_script(
    site_env: Env, tmp_path: Path
) -> None:
    out = Path(build_site(site_env.registry, tmp_path / "site").path)
    overview = dom((out / "index.html").as_uri())
    assert 'data-ready="yes"' in overview  # the page's own script ran
    assert ">churn</a>" in overview and ">staging</th>" in overview and ">prod</th>" in overview
    version = dom((out / "version-churn-v1.html").as_uri())
    body = re.search(r"<body[^>]*>", version).group(0)  # type: ignore[union-attr]
    assert (
        'data-ready="yes"' in body and "data-pwned" not in body
    )  # the page's script ran, the card's did not
    assert (
        "<title>churn@v1 - modelreg</title>" in version and "<img" not in version.split("<main>")[1]
    )
    assert "&lt;img src=x onerror=" in version  # the card's value, as text
    assert "kind: Deployment" in version  # the manifests as deployed
    model = dom((out / "model-churn.html").as_uri())
    assert '<svg class="plot"' in model and "<polyline" in model
