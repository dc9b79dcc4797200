"""The built site, loaded page by page in headless Chromium from Debian.

Run by `nox -s docs` after `mkdocs build --strict` (MXRESOLVE_DOCS_SITE names the built
site); skipped elsewhere. Fails on a console error or uncaught exception, a request that
fails or answers 4xx/5xx, a broken internal link or anchor, an image that does not load,
a mermaid diagram that does not render, and a search for "SRV" that finds nothing.
Screenshots of the step table and the state diagram go to build/screenshots/.

Chromium is driven through the DevTools protocol over one websocket (websocket-client).
The site is served by http.server on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = os.environ.get("MXRESOLVE_DOCS_SITE")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "build" / "screenshots"
PAGE_TIMEOUT = 30.0

# Skipped unless the docs session built a site; then a missing chromium is a failure.
pytestmark = pytest.mark.skipif(
    not SITE, reason="needs a built site (MXRESOLVE_DOCS_SITE, set by `nox -s docs`)"
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Path, str]]:
    assert SITE is not None
    root = Path(SITE).resolve()
    assert (root / "index.html").is_file(), f"no built site at {root}"
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """One headless Chromium page, driven by DevTools protocol commands."""

    def __init__(self) -> None:
        import websocket  # websocket-client, installed by the docs session

        assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
        self.profile = tempfile.mkdtemp(prefix="mxresolve-chromium-")
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=10)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=2,  # sharper screenshots
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        self.ws.send(json.dumps({"id": wanted, "method": method, "params": params}))
        deadline = time.monotonic() + PAGE_TIMEOUT
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = PAGE_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expression)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def problems(self) -> list[str]:
        """Console errors, exceptions and failed or 4xx/5xx requests since open()."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                found.append(f"console.{params['type']}: {args}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('exception', {}).get('description')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} ({params['entry'].get('url')})")
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                found.append(f"request failed: {params.get('errorText')}")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                response = params["response"]
                found.append(f"HTTP {response['status']} for {response['url']}")
        return found

    def mermaid_svgs(self) -> list[str]:
        """The SVG each mermaid diagram rendered (Material draws into closed shadow roots)."""
        return [self.call("DOM.getOuterHTML", nodeId=n)["outerHTML"] for n in self.mermaid_nodes()]

    def mermaid_nodes(self) -> list[int]:
        """DevTools node ids of the rendered diagrams' <svg> elements."""
        tree = self.call("DOM.getDocument", depth=-1, pierce=True)["root"]
        found: list[int] = []

        def walk(node: dict[str, Any]) -> None:
            attributes = node.get("attributes", [])
            classes = dict(zip(attributes[::2], attributes[1::2], strict=True)).get("class", "")
            if "mermaid" in classes.split():
                for shadow in node.get("shadowRoots", []):
                    for child in shadow.get("children", []):
                        if child.get("nodeName") == "svg":
                            found.append(child["nodeId"])
            for child in node.get("children", []) + node.get("shadowRoots", []):
                walk(child)

        walk(tree)
        return found

    def screenshot_node(self, node_id: int, path: Path) -> None:
        """A picture of one element, found by node id (it may be in a shadow root)."""
        self.evaluate(
            "for (const h of document.querySelectorAll('.md-header, .md-tabs'))"
            " h.style.display = 'none';"
        )
        self.call("DOM.scrollIntoViewIfNeeded", nodeId=node_id)
        quad = self.call("DOM.getBoxModel", nodeId=node_id)["model"]["border"]
        scroll = self.evaluate("[window.scrollX, window.scrollY]")
        xs, ys = quad[0::2], quad[1::2]
        pad = 24  # labels may stand a little outside the box
        self._capture(
            min(xs) + scroll[0] - pad,
            min(ys) + scroll[1] - pad,
            max(xs) - min(xs) + 2 * pad,
            max(ys) - min(ys) + 2 * pad,
            path,
        )

    def screenshot(self, selector: str, path: Path) -> None:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            "for (const h of document.querySelectorAll('.md-header, .md-tabs'))"
            " h.style.display = 'none';"
            "e.scrollIntoView(); const r = e.getBoundingClientRect();"
            "return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]; })()"
        )
        self._capture(*box, path)

    def _capture(self, x: float, y: float, width: float, height: float, path: Path) -> None:
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": x, "y": y, "width": width, "height": height, "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    try:
        yield chromium
    finally:
        chromium.close()


def _pages(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if p.name != "404.html" and "assets" not in p.relative_to(root).parts
    )


_IDS = re.compile(r"""\sid=["']([^"']+)["']""")


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    return frozenset(_IDS.findall(path.read_text("utf-8")))


def _link_problems(root: Path, base: str, page: str, hrefs: list[str]) -> list[str]:
    found = []
    for href in hrefs:
        absolute = urljoin(base + page, href)
        if not absolute.startswith(base):
            continue  # another site: not fetched (no network)
        url, fragment = urldefrag(absolute)
        target = root / unquote(urlsplit(url).path[len(urlsplit(base).path) :])
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            found.append(f"broken link {href!r}")
        elif fragment and target.suffix == ".html" and unquote(fragment) not in _ids(target):
            found.append(f"broken anchor {href!r}")
    return found


def test_every_page_loads_cleanly(site: tuple[Path, str], browser: Browser) -> None:
    root, base = site
    pages = _pages(root)
    assert len(pages) >= 8, pages
    report: dict[str, list[str]] = {}
    for page in pages:
        browser.open(base + page)
        diagrams = browser.evaluate("document.querySelectorAll('.mermaid').length")
        if diagrams:
            _wait_for_diagrams(browser, diagrams)
        problems = browser.problems()
        broken_images = browser.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        problems += [f"image did not load: {src}" for src in broken_images]
        hrefs = browser.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        problems += _link_problems(root, base, page, hrefs)
        if problems:
            report[page] = problems
    assert not report, json.dumps(report, indent=2)


def _wait_for_diagrams(browser: Browser, count: int) -> list[str]:
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline:
        svgs = browser.mermaid_svgs()
        if len(svgs) >= count:
            return svgs
        time.sleep(0.2)
    raise TimeoutError(f"{count} mermaid diagram(s) did not render")


def test_the_state_diagram_renders(site: tuple[Path, str], browser: Browser) -> None:
    _, base = site
    browser.open(base + "state-machine.html")
    (svg,) = _wait_for_diagrams(browser, 1)
    text = re.sub(r"<[^>]+>", " ", svg)
    assert "Syntax error" not in text
    for label in ("Step 3.3: delegated without a port", "deadline only", "no SRV record"):
        assert label in text, label
    (node,) = browser.mermaid_nodes()
    browser.screenshot_node(node, SHOTS / "state-diagram.png")
    assert not browser.problems()


def test_the_step_table(site: tuple[Path, str], browser: Browser) -> None:
    _, base = site
    browser.open(base + "steps.html")
    header = browser.evaluate(
        "[...document.querySelector('table').querySelectorAll('th')].map(t => t.textContent)"
    )
    assert header == [
        "Step",
        "When it applies",
        "What is looked up",
        "Port",
        "Host header",
        "Certificate name",
        "SNI",
    ]
    browser.screenshot("table", SHOTS / "step-table.png")
    assert (SHOTS / "step-table.png").stat().st_size > 10_000


def test_search_finds_srv(site: tuple[Path, str], browser: Browser) -> None:
    _, base = site
    browser.open(base + "index.html")
    browser.evaluate(
        "(() => { const toggle = document.querySelector('input[data-md-toggle=search]');"
        " toggle.checked = true; toggle.dispatchEvent(new Event('change'));"
        " const input = document.querySelector('input.md-search__input');"
        " input.focus(); input.value = 'SRV';"
        " input.dispatchEvent(new Event('input', {bubbles: true}));"
        " input.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true})); })()"
    )
    count = browser.wait_for(
        "document.querySelectorAll('.md-search-result__item').length", timeout=20
    )
    assert count > 0
    assert not browser.problems()
