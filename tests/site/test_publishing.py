"""Publishing the site: site_url and repo_url, sitemap, edit links, the 404
page under the project path, the CI and GitHub Pages workflows (actionlint),
the Install and Changelog pages, the package's Documentation URL, and the
colour scheme that follows the reader's system setting, with figures that
do not turn into white boxes in the dark scheme.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sitebuild
import siteserver
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = sitebuild.ROOT
WORKFLOWS = ROOT / ".github" / "workflows"
SITE_URL = "https://keras-lstm-gates.github.io/keras-lstm-gates/"
PROJECT_PATH = "/keras-lstm-gates/"


def _config():
    return siteserver.mkdocs_config()


def _urls():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]


def _workflow(name):
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on:` as True
    return data


def _steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.fixture(scope="module")
def site():
    code, output, site_dir = sitebuild.build_site()
    assert code == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    return site_dir


# -- configuration -----------------------------------------------------------


def test_site_and_repository_urls():
    config = _config()
    urls = _urls()
    assert config["site_url"] == SITE_URL
    assert siteserver.project_path() == PROJECT_PATH
    assert config["repo_url"] == urls["Repository"]
    assert config["edit_uri"] == f"edit/main/{config['docs_dir']}/"
    assert urls["Documentation"] == config["site_url"], (
        "the package's Documentation link should be the published site"
    )


def test_palette_follows_the_system_setting():
    palette = _config()["theme"]["palette"]
    media = {entry.get("media"): entry.get("scheme") for entry in palette}
    assert media == {
        "(prefers-color-scheme: light)": "default",
        "(prefers-color-scheme: dark)": "slate",
    }, media
    assert all("toggle" in entry for entry in palette), "the reader can still switch"


def test_install_and_changelog_are_in_the_nav():
    nav = _config()["nav"]
    top = {next(iter(item)): next(iter(item.values())) for item in nav if isinstance(item, dict)}
    assert top.get("Install") == "install.md"
    assert top.get("Changelog") == "changelog.md"
    assert list(top)[:2] == ["Home", "Install"], "Install should come right after Home"


# -- the built site ----------------------------------------------------------


def test_sitemap_lists_every_page_under_the_site_url(site):
    tree = ET.parse(site / "sitemap.xml")
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [loc.text for loc in tree.getroot().findall("s:url/s:loc", ns)]
    assert locs, "the sitemap is empty"
    assert all(loc.startswith(SITE_URL) for loc in locs), [
        loc for loc in locs if not loc.startswith(SITE_URL)
    ]
    assert sorted(loc[len(SITE_URL) :] for loc in locs) == sorted(sitebuild.site_pages(site))


def test_every_page_has_an_edit_link_to_a_file_of_the_repository(site):
    base = _config()["repo_url"].rstrip("/") + "/edit/main/"
    missing, wrong = [], []
    for page in sitebuild.site_pages(site):
        text = (site / page / "index.html").read_text(encoding="utf-8")
        links = re.findall(r'<a href="([^"]+)" title="Edit this page"', text)
        if len(links) != 1:
            missing.append(f"{page or '/'}: {links}")
            continue
        if not links[0].startswith(base) or not (ROOT / links[0][len(base) :]).is_file():
            wrong.append(f"{page or '/'}: {links[0]}")
    assert not missing, "pages without exactly one edit link:\n" + "\n".join(missing)
    assert not wrong, "edit links to no file of the repository:\n" + "\n".join(wrong)
    quickstart = (site / "tutorials" / "01_quickstart" / "index.html").read_text(encoding="utf-8")
    assert f'href="{base}notebooks/01_quickstart.ipynb" title="Edit this page"' in quickstart


def test_404_page_uses_the_project_path(site):
    text = (site / "404.html").read_text(encoding="utf-8")
    assets = re.findall(r'(?:href|src)="(/[^"]*)"', text)
    assert assets, "404.html should link its assets by absolute path (site_url is set)"
    outside = [a for a in assets if not a.startswith(PROJECT_PATH)]
    assert not outside, f"404.html points outside {PROJECT_PATH}: {outside}"
    for asset in assets:
        path = asset[len(PROJECT_PATH) :].split("#")[0].split("?")[0]
        target = site / path
        assert target.is_file() or (target / "index.html").is_file(), f"404.html: {asset}"


def test_changelog_page_shows_the_changelog(site):
    source = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    page = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    headings = re.findall(r"^##+ (.+)$", source, re.M)
    assert "Unreleased" in headings and any(h.startswith("0.1.0") for h in headings)
    for heading in headings:
        assert re.sub(r"[`*]", "", heading) in re.sub(r"<[^>]+>", "", page), heading


def test_install_page(site):
    text = (sitebuild.DOCS / "install.md").read_text(encoding="utf-8")
    repo = _urls()["Repository"]
    assert f'pip install "keras-lstm-gates @ git+{repo}"' in text
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for extra in extras:
        assert f"[{extra}]" in text, f"the Install page does not mention the [{extra}] extra"
    assert sitebuild.python_blocks(sitebuild.DOCS / "install.md"), "no check of the install"
    assert (site / "install" / "index.html").is_file()


# -- workflows ---------------------------------------------------------------


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(bash tasks\.sh test)\b", readme, re.M)
    assert commands, "the README should give the test command `bash tasks.sh test`"
    return commands[0]


def test_ci_workflow_runs_the_readme_test_command():
    workflow = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"]), workflow["on"]
    runs = [step.get("run", "") for step in _steps(workflow)]
    command = _readme_test_command()
    assert any(line.strip() == command for run in runs for line in run.splitlines()), runs
    for name, job in workflow["jobs"].items():
        minutes = job.get("timeout-minutes")
        assert minutes is not None and minutes <= 90, f"job {name}: timeout-minutes {minutes}"
        assert job.get("env", {}).get("CI") == "true", "the browser test must not skip in CI"


def test_docs_workflow_builds_strictly_and_deploys_to_pages():
    workflow = _workflow("docs.yml")
    jobs = workflow["jobs"]
    steps = _steps(workflow)
    runs = "\n".join(step.get("run", "") for step in steps)
    tasks = (ROOT / "tasks.sh").read_text(encoding="utf-8")
    site_case = re.search(r"^  site\)\n(.*?)^    ;;", tasks, re.M | re.S)
    strict = "mkdocs build --strict" in runs or (
        "bash tasks.sh site" in runs and site_case and "mkdocs build --strict" in site_case.group(1)
    )
    assert strict, "the docs workflow must build with mkdocs build --strict"
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    upload = uses.get("actions/upload-pages-artifact")
    assert upload and upload["with"]["path"] == _config()["site_dir"]
    deploy = [name for name, job in jobs.items() if "actions/deploy-pages" in str(job)]
    assert len(deploy) == 1, deploy
    job = jobs[deploy[0]]
    assert job["permissions"] == {"pages": "write", "id-token": "write"}
    assert job["environment"]["name"] == "github-pages"
    assert "push" in job["if"] and "refs/heads/main" in job["if"]
    for name, job in jobs.items():
        assert job.get("timeout-minutes"), f"job {name} has no timeout-minutes"


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        message = "actionlint is not installed (tools/requirements-dev.txt installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true")
        pytest.skip(message)
    return found


def test_workflows_pass_actionlint():
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "docs.yml"}
    proc = subprocess.run(
        [_actionlint(), "-no-color", *map(str, workflows)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_context_key }}\n"
        "      - uses: actions/checkout@v4\n        with:\n          no-such-input: 1\n"
    )
    proc = subprocess.run(
        [_actionlint(), "-no-color", str(broken)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no_such_context_key" in proc.stdout and "no-such-input" in proc.stdout, proc.stdout


# -- in the browser: 404 under the project path, colour scheme, figures --------


@pytest.fixture(scope="module")
def browser():
    from test_browser import open_browser

    yield from open_browser("http://127.0.0.1:")


def _open(chromium, recorder, url):
    from test_browser import _visit

    return _visit(chromium, recorder, url)


def test_404_page_renders_under_the_project_path(site, browser):
    chromium, recorder = browser
    with siteserver.serve(site) as base:
        _open(chromium, recorder, base + "no/such/page/")
        # The only failure is the missing page itself; its styles, scripts and
        # fonts all load from under the project path.
        missing = f"{base}no/such/page/"
        assert recorder.failed == [f"HTTP 404 {missing}"], recorder.failed
        assert not recorder.blocked, recorder.blocked
        others = [m for m in recorder.console if not m.endswith(missing)]
        assert not others, others
        styled = chromium.evaluate(
            "getComputedStyle(document.querySelector('.md-header')).position"
        )
        assert styled == "sticky", f"the 404 page is unstyled (header position {styled!r})"
        home = chromium.evaluate("document.querySelector('a.md-header__button.md-logo').href")
        assert home.rstrip("/") + "/" == base, home


def test_404_check_can_fail(site, browser):
    """Served at the root instead of the project path, the 404 page's assets
    are missing, and the check above would see it."""
    chromium, recorder = browser
    with siteserver.serve(site, prefix="/") as base:
        recorder.reset()
        chromium.send("Page.navigate", {"url": base + "no/such/page/"})
        chromium.wait_for(lambda: recorder.loaded, 30, "the load event of the 404 page")
        chromium.pump(0.5)
        assert len(recorder.failed) > 1, recorder.failed


def _scheme(chromium, recorder, url, scheme):
    chromium.send(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    # Material keeps the last palette in localStorage: forget it, so that the
    # page starts from the system setting.
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    chromium.send(
        "Storage.clearDataForOrigin",
        {"origin": origin, "storageTypes": "local_storage,session_storage"},
    )
    _open(chromium, recorder, url)
    # Material's script picks the palette once it runs, which can be after
    # the load event on a busy machine: wait for the scheme that the system
    # setting asks for, up to a few seconds, then report what the page shows.
    # The storage clearing above can land after the page has read the last
    # palette: if the page shows another scheme, clear it from the page
    # itself and load the page again, once.
    expected = "slate" if scheme == "dark" else "default"
    shown = None
    for attempt in range(2):
        if attempt:
            chromium.evaluate("localStorage.clear(); sessionStorage.clear(); true")
            _open(chromium, recorder, url)
        for _ in range(50):
            shown = chromium.evaluate("document.body.getAttribute('data-md-color-scheme')")
            if shown == expected:
                return shown
            chromium.pump(0.1)
    return shown


def _luminance_of(chromium, selector) -> float:
    """Mean luminance (0 black, 1 white) of the element on the screen."""
    import matplotlib.image

    box = chromium.evaluate(
        "(() => { const e = document.querySelector(" + json.dumps(selector) + ");"
        " e.scrollIntoView(); const r = e.getBoundingClientRect();"
        " return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()"
    )
    x, y, width, height = box
    assert width > 50 and height > 50, f"{selector} is not shown ({box})"
    chromium.pump(0.3)
    shot = chromium.send(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": x, "y": y, "width": width, "height": height, "scale": 1},
        },
        timeout=60,
    )
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(shot["data"])), format="png")
    rgb = pixels[..., :3]
    return float((0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]).mean())


FIGURES = (
    ("tracing/", '.md-content img[src$=".png"]'),
    ("tutorials/02_forget_gate/", '.md-content img[src^="data:image/png"]'),
)


@pytest.mark.parametrize(("page", "selector"), FIGURES, ids=[p for p, _ in FIGURES])
def test_scheme_follows_the_system_and_figures_are_dark_in_the_dark_scheme(
    site, browser, page, selector
):
    chromium, recorder = browser
    with siteserver.serve(site) as base:
        try:
            assert _scheme(chromium, recorder, base + page, "light") == "default"
            light = _luminance_of(chromium, selector)
            assert _scheme(chromium, recorder, base + page, "dark") == "slate"
            dark = _luminance_of(chromium, selector)
        finally:
            chromium.send("Emulation.setEmulatedMedia", {"features": []})
    assert light > 0.7, f"{page}: the figure should be light in the light scheme ({light:.2f})"
    assert dark < 0.35, f"{page}: the figure is a light box in the dark scheme ({dark:.2f})"
