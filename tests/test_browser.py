"""The report in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright)
opens the index and a failing derivation's page from ``file://``, with every request outside
the site refused, and checks that they render with their plots and without console errors.

Without a Chromium or Playwright the test is skipped, except in CI (``CI`` set, as ``.ci/run``
does), where it fails: CI installs both."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from handgrad.discovery import find
from handgrad.views import site

FAILING = "rnn-mutant-recurrent-term-dropped"
PASSING = "mlp-ce-tanh"
# Chromium on a machine without network: no first-run, sync, component or background fetches,
# no QUIC probing, no GPU, and a fresh profile (the user-data-dir) per run.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = next((p for p in (os.environ.get("HANDGRAD_CHROMIUM"), shutil.which("chromium"),
                              shutil.which("chromium-browser"), "/usr/bin/chromium")
                  if p and Path(p).is_file()), None)
    missing = []
    if found is None:
        missing.append("no Chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("no Playwright (pip install playwright)")
    if missing:
        why = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but: {why}")
        pytest.skip(f"browser test needs a browser: {why}")
    return found


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    executable = chromium()  # skips (or fails under CI=1) without a browser or Playwright
    from playwright.sync_api import sync_playwright

    out = tmp_path_factory.mktemp("site")
    site.build(out, [find(PASSING), find(FAILING)], cases=2, jobs=1)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS,
            viewport={"width": 1200, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

        def refuse_outside(route):
            if route.request.url.startswith(("file://", "data:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", refuse_outside)
        yield out, page, problems, outside
        context.close()


def plots_rendered(page) -> list[dict]:
    """Every image of the page with whether the browser decoded and laid it out."""
    return page.evaluate("""() => Array.from(document.images).map(i => ({
        alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
        width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height}))""")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_the_index_and_a_failing_page_render_with_their_plots(browser_page, tmp_path):
    out, page, problems, outside = browser_page
    page.goto((out / "index.html").as_uri())
    assert page.title() == "handgrad report"
    rows = page.locator("table.index tr")
    assert rows.count() == 3  # the header and two derivations
    assert "2/2 derivations as expected" in page.inner_text("body")
    page.screenshot(path=tmp_path / "index.png")

    page.click(f"text={FAILING}")
    page.wait_for_load_state("load")
    assert page.url.endswith(f"{FAILING}.html")
    assert page.locator("h1").first.inner_text().startswith(FAILING)
    assert page.locator("#diagnosis").is_visible()
    assert "reproduce: handgrad check" in page.inner_text("pre")
    images = plots_rendered(page)
    alts = [i["alt"] for i in images]
    assert any("hand minus reference" in a for a in alts), alts
    assert any(a.startswith("Taylor remainder") for a in alts), alts
    assert any("finite-difference" in a for a in alts), alts
    assert all(i["loaded"] and i["width"] > 200 and i["height"] > 150 for i in images), images
    # A tensor's equation tag jumps to its equation, which is then on screen.
    link = page.locator("table.matrix a[href^='#eq-']").first
    target = link.get_attribute("href")
    link.click()
    assert page.locator(target).is_visible() and page.url.endswith(target)
    shot = tmp_path / "failing.png"
    page.screenshot(path=shot, full_page=True)
    width, height = png_size(shot)
    assert width == 1200 and height > 900
    assert problems == [] and outside == []


def test_a_derivation_s_equations_are_typeset_as_mathml(browser_page, tmp_path):
    """The passing derivation's Markdown: every equation a MathML element the browser lays out
    (a fraction's numerator above its denominator, which text flow never does), none left as
    LaTeX source, and a tag's anchor on its equation. The screenshot shows the first equations."""
    out, page, problems, outside = browser_page
    page.goto((out / f"{PASSING}.html").as_uri())
    maths = page.evaluate("""() => Array.from(document.querySelectorAll('.doc math')).map(m => ({
        block: m.getAttribute('display') === 'block', width: m.getBoundingClientRect().width,
        height: m.getBoundingClientRect().height}))""")
    assert len(maths) > 50, len(maths)
    assert all(m["width"] > 0 and m["height"] > 0 for m in maths), maths
    assert sum(m["block"] for m in maths) >= 15
    assert page.locator(".doc .math-error").count() == 0
    assert "\\frac" not in page.inner_text(".doc") and "\\partial" not in page.inner_text(".doc")
    stacked = page.evaluate("""() => Array.from(document.querySelectorAll('.doc mfrac')).map(f => {
        const [top, bottom] = Array.from(f.children).map(c => c.getBoundingClientRect());
        return top.bottom <= bottom.top + 1; })""")
    assert stacked and all(stacked), stacked
    equation = page.locator("#eq-M7")
    assert equation.locator("math").count() == 1 and "(M7)" in equation.inner_text()
    equation.scroll_into_view_if_needed()
    page.locator(".doc").screenshot(path=tmp_path / "equations.png")
    # The page's link to the catalogue's notation opens it, typeset too.
    page.click("text=notation page")
    page.wait_for_load_state("load")
    assert page.url.endswith("doc-notation.html") and page.title() == "notation"
    assert page.locator(".doc math").count() > 50 and page.locator(".math-error").count() == 0
    assert problems == [] and outside == []
