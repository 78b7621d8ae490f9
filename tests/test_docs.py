"""The documentation site cannot drift from the code.

- Every fenced ``python`` block of ``docs/`` runs: the blocks of one page run in order in one
  namespace, in a fresh temporary folder (the repository root on ``sys.path``, so the examples
  that wrap the corpus of ``tests/corpus/`` import it); a block with ``title="path"`` is a file
  of that folder, written before the blocks after it run. A block that is deliberately not run
  says so on its fence, ``{ .python .no-run }``, and few do.
- The tutorial is followed as a newcomer follows it: its file is written, ``handgrad check``
  run in a project of its own, the failure it shows is the one handgrad prints, the fix it gives
  makes the check pass.
- The CLI reference is generated from argparse (docs/hooks.py); the JSON reference lists the
  fields a row really has; the configuration page the keys ``handgrad.config`` reads.
- The site builds with ``mkdocs build --strict`` (warnings are errors) and is opened in headless
  Chromium over a local server: its math is MathML, no ``$`` source is left, and no page logs a
  console error or asks for anything outside the site. Without Chromium or Playwright the
  browser test skips, except under ``CI=1``, where it fails (as tests/test_browser.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
TITLE = re.compile(r'title="([^"]+)"')


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def fences(page: Path) -> list[tuple[str, str, str]]:
    """(language, info string, body) of every fenced block of ``page``, in order."""
    out = []
    for m in FENCE.finditer(page.read_text()):
        info = m["info"].strip()
        brace = re.match(r"\{\s*\.(\w[\w-]*)", info)
        language = brace[1] if brace else (info.split()[0] if info else "")
        indent = m["indent"]
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in m["body"].splitlines(keepends=True))
        out.append((language, info, body))
    return out


def python_blocks(page: Path) -> list[tuple[str, str]]:
    """(title or "", body) of every python block of ``page`` that is meant to run."""
    return [((TITLE.search(info) or [None, ""])[1], body)
            for language, info, body in fences(page)
            if language == "python" and ".no-run" not in info]


RUNNABLE = [p for p in pages() if python_blocks(p) and p.name != "tutorial.md"]


def test_few_blocks_are_not_run():
    not_run = [(p.relative_to(DOCS), info) for p in pages() for lang, info, _ in fences(p)
               if ".no-run" in info]
    assert len(not_run) <= 5, not_run
    untagged = [(p.relative_to(DOCS), info) for p in pages() for lang, info, _ in fences(p)
                if not lang]
    assert not untagged, f"a fence without a language, so neither run nor known: {untagged}"


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, (title, body) in enumerate(python_blocks(page), 1):
        if title:
            target = tmp_path / title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        code = compile(body, f"{page.relative_to(ROOT)} (python block {number})", "exec")
        exec(code, namespace)  # the documentation's own examples


def handgrad_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "handgrad.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def verdict_lines(text: str) -> list[tuple[str, str]]:
    """(derivation, verdict) of each line of a `handgrad check` table: name first, verdict last
    (``pass``, ``FAIL [kind]``, ...), the figures between left out (they are the machine's)."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+\d+\s+.*?\s{2,}((?:pass|FAIL|rejected|ERROR|VACUOUS|MISSED)"
                     r"(?: \[[\w-]+\])?)\s*$", line)
        if m:
            rows.append((m[1], m[2]))
    return rows


@pytest.mark.slow
def test_tutorial_as_a_newcomer(tmp_path):
    """The tutorial's steps in a project outside this repository: its record file, its
    `pyproject.toml`, the failure, the fix, the pass, and its plain `pytest`."""
    page = DOCS / "tutorial.md"
    blocks = fences(page)
    files = [(TITLE.search(info)[1], body) for lang, info, body in blocks
             if TITLE.search(info) and lang in ("python", "toml")]
    outputs = [body for lang, info, body in blocks if lang == "text"]
    assert files and outputs, "the tutorial shows a file and what handgrad prints"
    project = tmp_path / "my-project"
    written: dict[str, str] = {}
    fix = None
    for title, body in files:
        if title.endswith("(the fix)"):
            fix = (title.removesuffix("(the fix)").strip(), body)
            continue
        written[title] = body
        (project / title).parent.mkdir(parents=True, exist_ok=True)
        (project / title).write_text(body)
    assert fix is not None, "the tutorial gives its fix in a block titled '<file> (the fix)'"

    failing = handgrad_cli("check", cwd=project)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    shown_failing = next(o for o in outputs if "FAIL" in o)
    assert verdict_lines(failing.stdout) == verdict_lines(shown_failing), failing.stdout
    # Every line the tutorial quotes of the diagnosis is printed as such.
    for quoted in ("first wrong:", "reproduce: handgrad check", "smallest case"):
        assert quoted in shown_failing and quoted in failing.stdout

    # The fix: each line of the fix block replaces the line of the file that starts as it does
    # (up to its `=`).
    name, body = fix
    text = written[name]
    for line in body.strip("\n").splitlines():
        head = line.split("=")[0]
        assert text.count(head) == 1, f"the fix's line {line!r} matches no single line of {name}"
        text = re.sub(rf"^{re.escape(head)}=.*$", lambda _: line, text, flags=re.M)  # noqa: B023
    (project / name).write_text(text)

    passing = handgrad_cli("check", cwd=project)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    shown_passing = next(o for o in outputs
                         if re.search(r"\bpass\s*$", o, re.M) and "FAIL" not in o)
    assert verdict_lines(passing.stdout) == verdict_lines(shown_passing), passing.stdout

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-p", "no:randomly"], cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout + tests.stderr


def test_readme_failure_is_the_tutorials():
    """The failure the README prints is the tutorial's, line for line (the README cuts rows)."""
    readme = [body for lang, info, body in fences(ROOT / "README.md") if lang == "text"]
    tutorial = next(body for lang, info, body in fences(DOCS / "tutorial.md")
                    if lang == "text" and "FAIL" in body)
    assert readme, "the README shows a failure as it prints"
    for line in readme[0].splitlines():
        assert line == "..." or line in tutorial.splitlines(), line


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


def test_cli_reference_is_generated_from_argparse():
    text = (DOCS / "reference" / "cli.md").read_text()
    for command in ("check", "new", "report", "grade"):
        assert f"<!-- handgrad-help: {command} -->" in text


@pytest.fixture(scope="module")
def json_row() -> dict:
    """A row of ``handgrad check --json``, as the CLI prints it (run in this process)."""
    import contextlib
    import io

    from handgrad import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["check", "mlp-ce-tanh", "--cases", "1", "--json"])
    assert status == 0
    return json.loads(out.getvalue())[0]


def test_json_reference_names_every_field(json_row):
    """The fields the JSON page lists are the fields of a real row, no more and no fewer."""
    documented = re.findall(r"^\| `(\w+)` \|", (DOCS / "reference" / "json.md").read_text(),
                            re.M)
    assert sorted(documented) == sorted(json_row)


def test_json_example_is_a_real_row(json_row):
    """The example row on the JSON page has exactly the fields of a real row."""
    example = next(body for lang, info, body in fences(DOCS / "reference" / "json.md")
                   if lang == "json")
    assert sorted(json.loads(example)) == sorted(json_row)


def test_configuration_reference_names_every_key():
    import handgrad.config

    source = Path(handgrad.config.__file__).read_text()
    keys = set(re.findall(r'table\.get\("(\w+)"', source))
    text = (DOCS / "reference" / "configuration.md").read_text()
    assert keys and all(f"`{k}`" in text for k in keys), keys


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not re.search(r"^(WARNING|ERROR)", run.stderr, re.M), run.stderr
    return out


@pytest.mark.slow
def test_site_builds_strictly(built_site):
    html = (built_site / "catalogue" / "mlp.html").read_text()
    assert html.count("<math") > 50 and 'class="math-error"' not in html
    assert 'id="eq-M7"' in html
    # Every page of the catalogue is a page of the site, read from derivations/ (not copied).
    index = (built_site / "index.html").read_text()
    for source in (ROOT / "derivations").glob("*.md"):
        assert (built_site / "catalogue" / f"{source.stem}.html").is_file()
        assert f'catalogue/{source.stem}.html"' in index, f"{source.name} is not in the nav"
        assert not (DOCS / "catalogue" / source.name).exists()
    for page in built_site.rglob("*.html"):
        text = page.read_text()
        assert "HGMATH" not in text, page  # a formula left as its placeholder
        assert 'class="math-error"' not in text, page


SHOWN = ["index.html", "tutorial.html", "catalogue/mlp.html", "catalogue/rnn.html",
         "catalogue/notation.html", "explanation/verdicts.html", "reference/adapters.html",
         "reference/cli.html", "explanation/speed.html"]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def chromium() -> str:
    from tests.test_browser import chromium as find_chromium

    return find_chromium()


@pytest.mark.slow
def test_site_in_chromium(built_site, tmp_path):
    executable = chromium()  # skips (fails under CI=1) without a browser or Playwright
    from playwright.sync_api import sync_playwright

    from tests.test_browser import ARGS

    handler = partial(QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    seen: dict[str, dict] = {}
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=executable, headless=True, args=ARGS,
                viewport={"width": 1300, "height": 900})
            page = context.new_page()
            problems: list[str] = []
            outside: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            def refuse_outside(route):
                if route.request.url.startswith((base, "data:", "blob:")):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", refuse_outside)
            for name in SHOWN:
                page.goto(base + name, wait_until="networkidle")
                seen[name] = page.evaluate("""() => {
                    const maths = Array.from(document.querySelectorAll('article math'));
                    // The page's prose, less its code: a page may show LaTeX source on purpose
                    // (the notation page quotes `$$ ... \\tag{M8} $$` in a code span).
                    const article = document.querySelector('article');
                    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
                    let text = '';
                    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                        if (!n.parentElement.closest('code, pre, math')) text += n.data;
                    }
                    return {
                        maths: maths.length,
                        // MathML laid out by the browser has a size; unrendered markup has none.
                        laidOut: maths.filter(m => m.getBoundingClientRect().width > 0).length,
                        // A fraction typeset as MathML has its numerator above its
                        // denominator; MathML left unrendered runs them on one line.
                        stacked: Array.from(document.querySelectorAll('article mfrac')).filter(
                            f => f.children.length === 2 &&
                                 f.children[0].getBoundingClientRect().bottom <=
                                 f.children[1].getBoundingClientRect().top + 1).length,
                        fractions: document.querySelectorAll('article mfrac').length,
                        dollars: (text.match(/\\$\\$|\\\\frac|\\\\tag/g) || []).length,
                        title: document.title,
                    };
                }""")
                seen[name]["problems"] = list(problems)
                problems.clear()
            page.goto(base + "catalogue/mlp.html")
            page.screenshot(path=str(tmp_path / "catalogue-mlp.png"))
            context.close()
    finally:
        server.shutdown()
    assert not outside, f"the site asked for something outside itself: {outside}"
    for name, facts in seen.items():
        assert not facts["problems"], (name, facts["problems"])
        assert facts["dollars"] == 0, (name, facts)
        assert facts["laidOut"] == facts["maths"], (name, facts)
        assert facts["stacked"] == facts["fractions"], (name, facts)
    for name in ("catalogue/mlp.html", "catalogue/rnn.html", "explanation/verdicts.html"):
        assert seen[name]["maths"] > 5, (name, seen[name])
    assert seen["catalogue/mlp.html"]["fractions"] > 5
