"""The report's page in headless Chromium: each equation typeset with its verdict, the failing
ones marked (a red bar) with their diagnosis beside them (skipped without a browser, as
tests/test_browser.py, except under CI)."""

from __future__ import annotations

from pathlib import Path

from handgrad.discovery import discover_path
from handgrad.views import site
from tests.test_browser import ARGS, chromium


def test_the_failing_equations_are_marked_in_the_browser(tmp_path):
    executable = chromium()
    from playwright.sync_api import sync_playwright

    records, _ = discover_path(Path("tests/corpus/pages/records.py"))
    site.build(tmp_path, [r for r in records if r.name == "two-layer-first-attempt"], cases=2,
               jobs=1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            "file://") else route.abort())
        page.goto((tmp_path / "two-layer-first-attempt.html").as_uri())
        marked = {tag: page.locator(f"#eq-{tag}") for tag in map(str, range(1, 12))}
        classes = {tag: el.get_attribute("class") for tag, el in marked.items()}
        assert {t for t, c in classes.items() if c == "eq fail"} == {"6", "7", "9", "10"}
        assert all(classes[t] == "eq pass" for t in ("1", "2", "3", "4", "5", "8", "11"))
        six = marked["6"].locator(".eqverdict").inner_text()
        assert "WRONG [sign]" in six and "the code is right, the page is not" in six
        assert marked["6"].locator("math").count() == 1  # typeset, not source
        bar = marked["6"].evaluate("e => getComputedStyle(e).borderLeftColor")
        assert bar == "rgb(204, 34, 34)"
        browser.close()
