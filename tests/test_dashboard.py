"""Browser test of the static dashboard (dashboard/index.html + app.js).

A temporary copy of dashboard/ (index.html, app.js, a symlink to node_modules and a fake
dashboard_data.js from tests/dashboard_fixture.py) is opened in headless Chromium over http://
and file://, with the libraries from node_modules and with the CDN tried first (?cdn=1). The CDN
hosts are intercepted -- aborted, left hanging like a stalled CDN, or answered from node_modules --
so the test behaves the same with or without internet: CDN-first must fall back to the local
copies quickly, or use the CDN copies when they come. Every tab is clicked and checked for real
content (chart paths, one KaTeX element per equation, a moving animation), and the page must log
no errors besides the failed CDN requests. Missing, empty, broken and sparse data files and
missing libraries must give a clear message, never a blank page.
Screenshots of each tab go to pytest's tmp_path (paths printed; see them with `pytest -s`).

A real recording goes through the real pipeline too (train -> discover -> evaluate on a tiny
damped-pendulum recording from tests/dashboard_fixture.py, about 20 s): the fields evaluate.py
writes for it (approximate laws flagged and never counted, coefficients with their spread, the
energy's decay along the recording beside its integrated loss law) are checked for what they
claim, then drawn in the browser.

The browser tests are skipped only when Chromium or dashboard/node_modules (`npm ci` in
dashboard/) is missing.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

try:
    from dashboard_fixture import W2, make_data, write_data_js, write_recording_csv
    from tiny_pipeline import ok
except ImportError:                      # tests/ turned into a package
    from tests.dashboard_fixture import W2, make_data, write_data_js, write_recording_csv
    from tests.tiny_pipeline import ok

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "dashboard"
NODE_MODULES = DASHBOARD / "node_modules"
CHROMIUM = os.environ.get("DASHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CDN_HOSTS = {"cdn.jsdelivr.net", "unpkg.com"}
CDN_PATTERN = re.compile(r"^https?://(cdn\.jsdelivr\.net|unpkg\.com)/")
TABS = ["trajectory", "energy", "latent", "equations", "hnn"]
READY = "[data-testid=app], [data-testid=no-data], [data-testid=load-error]"
LOAD_TIMEOUT_MS = 20_000


def _manifest() -> dict:
    text = (DASHBOARD / "index.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="lib-manifest">(.*?)</script>', text, re.S)
    assert m, "index.html has no lib-manifest"
    return json.loads(m.group(1))


def _require_browser_prerequisites() -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    missing = [lib["package"] for lib in _manifest()["libs"]
               if not (NODE_MODULES / lib["package"] / lib["file"]).is_file()]
    if missing:
        pytest.skip(f"dashboard/node_modules lacks {', '.join(missing)}: run `npm ci` in dashboard/")


# ------------------------------------------------------------------------------ no browser

def test_pinned_versions_and_integrity():
    """index.html's library list matches package.json / package-lock.json and node_modules."""
    manifest = _manifest()
    package = json.loads((DASHBOARD / "package.json").read_text())
    lock = json.loads((DASHBOARD / "package-lock.json").read_text())
    deps = package["dependencies"]
    assert {lib["package"] for lib in manifest["libs"]} <= set(deps)
    for lib in manifest["libs"]:
        assert deps[lib["package"]] == lib["version"], f"{lib['package']}: not pinned to {lib['version']}"
        assert lock["packages"][f"node_modules/{lib['package']}"]["version"] == lib["version"]
    assert deps["react"].startswith("18.") and deps["react-dom"] == deps["react"]
    if not NODE_MODULES.is_dir():
        pytest.skip("dashboard/node_modules missing (npm ci): integrity not checked")
    for lib in manifest["libs"]:
        for asset in [lib, lib.get("dev"), lib.get("css")]:
            if asset:
                blob = (NODE_MODULES / lib["package"] / asset["file"]).read_bytes()
                digest = "sha384-" + base64.b64encode(hashlib.sha384(blob).digest()).decode()
                assert digest == asset["integrity"], f"{lib['package']}/{asset['file']}: stale integrity"


# ------------------------------------------------------------------------------ fixtures

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def serve():
    """serve(folder) -> base URL of a local HTTP server for that folder."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


NO_FILE = object()


def _site(folder: Path, data=NO_FILE, node_modules: bool | list[str] = True) -> Path:
    """A copy of dashboard/ in `folder`: the page, dashboard_data.js holding `data` (NO_FILE: no
    data file) and node_modules (True: a symlink to the real one; a list: only those packages;
    False: none)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "app.js"):
        shutil.copy2(DASHBOARD / name, folder / name)
    if node_modules is True:
        (folder / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    elif node_modules:
        for pkg in node_modules:
            (folder / "node_modules" / pkg).parent.mkdir(parents=True, exist_ok=True)
            (folder / "node_modules" / pkg).symlink_to(NODE_MODULES / pkg, target_is_directory=True)
    if data is not NO_FILE:
        write_data_js(folder, data)
    return folder


@pytest.fixture(scope="module")
def browser():
    _require_browser_prerequisites()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def site(tmp_path_factory, data):
    return _site(tmp_path_factory.mktemp("dashboard"), data)


class Watch:
    """Console errors and page errors of one page; expected resource failures filtered out."""

    def __init__(self, page, allowed_failed_url):
        self.errors: list[str] = []
        self.allowed: list[str] = []

        def on_console(msg):
            if msg.type != "error":
                return
            url = (msg.location or {}).get("url", "")
            if msg.text.startswith("Failed to load resource") and allowed_failed_url(url):
                self.allowed.append(url)
            else:
                self.errors.append(f"console.error: {msg.text} ({url})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))


def _is_cdn(url: str) -> bool:
    return urlsplit(url).hostname in CDN_HOSTS


def _serve_cdn_from_node_modules(route):
    """Answer a CDN request (.../npm/pkg@1.2.3/path or unpkg.com/pkg@1.2.3/path) like the CDN
    would, from the same file in node_modules."""
    path = urlsplit(route.request.url).path.removeprefix("/npm/").lstrip("/")
    m = re.match(r"^((?:@[^/]+/)?[^/@]+)@[^/]+/(.+)$", path)
    file = NODE_MODULES / m.group(1) / m.group(2) if m else None
    if file is None or not file.is_file():
        route.fulfill(status=404, body="not found", headers={"access-control-allow-origin": "*"})
        return
    types = {".js": "application/javascript", ".css": "text/css", ".woff2": "font/woff2",
             ".woff": "font/woff", ".ttf": "font/ttf"}
    route.fulfill(status=200, body=file.read_bytes(),
                  headers={"content-type": types.get(file.suffix, "application/octet-stream"),
                           "access-control-allow-origin": "*"})


def _open(browser, url, *, cdn="abort", allowed_failed_url=_is_cdn):
    """New page at `url`; the CDN hosts are aborted ("abort"), never answered ("stall"), or
    answered from node_modules ("serve")."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    if cdn == "abort":
        context.route(CDN_PATTERN, lambda route: route.abort("internetdisconnected"))
    elif cdn == "stall":
        context.route(CDN_PATTERN, lambda route: None)   # never answered: a stalled CDN
    else:
        context.route(CDN_PATTERN, _serve_cdn_from_node_modules)
    watch = Watch(page, allowed_failed_url)
    started = time.monotonic()
    page.goto(url)
    page.wait_for_selector(READY, timeout=LOAD_TIMEOUT_MS)
    return context, page, watch, time.monotonic() - started


def _curve_lengths(page, scope: str) -> list[int]:
    """Length of the `d` of each drawn Recharts line inside `scope`."""
    return page.eval_on_selector_all(f"{scope} .recharts-line path.recharts-curve",
                                     "els => els.map(e => (e.getAttribute('d') || '').length)")


def _long_curves(page, scope: str, min_len: int = 200) -> int:
    return sum(n >= min_len for n in _curve_lengths(page, scope))


def _shot(page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


# ------------------------------------------------------------------------------ checks per tab

def _check_header(page, data):
    assert "2026-11-23" in page.inner_text("[data-testid=header-generated]")
    assert page.inner_text("[data-testid=header-backend]").strip() == data["backend"]
    systems_text = page.inner_text("[data-testid=header-systems]")
    for name in data["systems"]:
        assert name in systems_text
    tabs = page.locator("[role=tab]")
    assert tabs.count() == len(TABS)


def _check_trajectory(page, data, shots, label):
    page.click("[data-testid=tab-trajectory]")
    panel = "[data-testid=panel-trajectory]"
    kinds = {"projectile": "Position (x–y)", "spring": "Phase portrait", "lab-pendulum": "Phase portrait"}
    for name, sys in data["systems"].items():
        page.select_option("[data-testid=system-select]", name)
        tr = sys["trajectories"][0]
        n_series = sum(tr[k] is not None for k in ("true", "standard", "physics"))
        assert page.inner_text("[data-testid=plot-kind]") == kinds[name]
        assert page.locator("[data-testid=state-chart]").count() == len(sys["variables"])
        # whole-trajectory paths in the main plot + one line per series in each state chart
        assert _long_curves(page, "[data-testid=main-plot]") >= n_series, name
        assert _long_curves(page, "[data-testid=state-plots]") == n_series * len(sys["variables"]), name
        assert page.locator("[data-testid=traj-select] option").count() == len(sys["trajectories"])
    page.select_option("[data-testid=system-select]", "projectile")
    _shot(page, shots, f"{label}-trajectory-start")

    readout = page.locator("[data-testid=time-readout]")
    slider = page.locator("[data-testid=time-slider]")
    before, before_value = readout.inner_text(), slider.input_value()
    assert "step 1/100" in before
    page.click("[data-testid=play-button]")
    page.wait_for_function(
        "prev => document.querySelector('[data-testid=time-readout]').innerText !== prev",
        arg=before, timeout=5000)
    page.wait_for_timeout(500)
    page.click("[data-testid=play-button]")                       # pause
    page.wait_for_timeout(100)
    paused, paused_value = readout.inner_text(), slider.input_value()
    assert paused != before and int(paused_value) > int(before_value)
    assert int(paused_value) >= 4, f"animation too slow: {paused}"
    page.wait_for_timeout(300)
    assert readout.inner_text() == paused, "animation kept running after pause"
    _shot(page, shots, f"{label}-trajectory-playing")

    slider.fill("60")                                             # scrub
    assert "step 61/100" in readout.inner_text()
    page.select_option("[data-testid=traj-select]", "1")          # another trajectory: rewinds
    assert "step 1/100" in readout.inner_text()


def _check_energy(page, data, shots, label):
    page.click("[data-testid=tab-energy]")
    page.select_option("[data-testid=system-select]", "projectile")
    assert _long_curves(page, "[data-testid=energy-chart]") == 3
    assert _long_curves(page, "[data-testid=drift-chart]", 100) == 2
    assert page.locator("[data-testid=drift-row]").count() == len(data["systems"])

    threshold = page.locator("[data-testid=drift-threshold]")
    threshold.fill("0.001")
    page.wait_for_timeout(100)
    n_dots = page.locator("[data-testid=drift-chart] .violation-dot").count()
    assert n_dots > 0
    assert page.locator("[data-testid=energy-chart] .violation-area").count() > 0
    summary = {el.get_attribute("data-series"): int(el.get_attribute("data-violations"))
               for el in page.locator("[data-testid=violation-summary] [data-series]").all()}
    assert summary["standard"] > 0 and sum(summary.values()) == n_dots
    assert page.locator("[data-testid=drift-table] td[data-violation='1']").count() > 0
    _shot(page, shots, f"{label}-energy")

    threshold.fill("100")
    page.wait_for_timeout(100)
    assert page.locator("[data-testid=drift-chart] .violation-dot").count() == 0
    assert page.locator("[data-testid=energy-chart] .violation-area").count() == 0
    assert page.locator("[data-testid=drift-table] td[data-violation='1']").count() == 0
    threshold.fill("0.05")

    page.select_option("[data-testid=system-select]", "lab-pendulum")   # no truth: no energy
    assert page.locator("[data-testid=energy-unavailable]").is_visible()
    page.select_option("[data-testid=system-select]", "projectile")


def _check_latent(page, data, shots, label):
    page.click("[data-testid=tab-latent]")
    for name, sys in data["systems"].items():
        page.select_option("[data-testid=system-select]", name)
        latent = sys["latent"]
        points = page.locator("[data-testid=latent-scatter] .recharts-scatter-symbol")
        assert points.count() == len(latent["points"]), name
        bars = page.locator("[data-testid=variance-chart] .recharts-bar-rectangle")
        assert bars.count() == len(latent["explained_variance"]), name
        assert _long_curves(page, "[data-testid=variance-chart]", 10) == 1
        keys = list(latent["color_by"])
        options = page.locator("[data-testid=color-select] option").all_inner_texts()
        assert options == keys
    page.select_option("[data-testid=system-select]", "projectile")
    fills = "els => els.map(e => e.getAttribute('fill'))"
    first = page.eval_on_selector_all("[data-testid=latent-scatter] .recharts-scatter-symbol circle", fills)
    assert len(set(first)) > 20, "points are not coloured by value"
    page.select_option("[data-testid=color-select]", "px")
    second = page.eval_on_selector_all("[data-testid=latent-scatter] .recharts-scatter-symbol circle", fills)
    assert first != second
    page.select_option("[data-testid=color-select]", "true energy")
    _shot(page, shots, f"{label}-latent")


def _check_equations(page, data, shots, label):
    page.click("[data-testid=tab-equations]")
    for name, sys in data["systems"].items():
        page.select_option("[data-testid=system-select]", name)
        eqs = sys["equations"]
        assert page.locator("[data-testid=equation-card]").count() == len(eqs)
        assert page.locator("[data-testid=equation-katex]").count() == len(eqs)
        assert page.locator("[data-testid=equation-katex] .katex").count() == len(eqs)
        assert page.locator("[data-testid=equation-source]").count() == 0
        assert page.inner_text("[data-testid=n-conserved]").strip() == str(sys["n_conserved"])
        assert page.locator("[data-testid=pareto-chart]").count() == len(eqs)
        assert _long_curves(page, "[data-testid=pareto-chart]", 20) == len(eqs)
        assert page.locator("[data-testid=pareto-chart] .pareto-chosen").count() == \
            sum(any(p["chosen"] for p in eq["pareto"]) for eq in eqs)
        cards = page.locator("[data-testid=equation-card]").all_inner_texts()
        for eq, text in zip(eqs, cards):
            assert eq["kind"] in text.lower() and eq["expression"] in text
            assert (f"matches {eq['matched']}" in text) if eq["matched"] else ("matches" not in text)
        if name == "projectile":
            assert "9.81" in page.inner_text("[data-testid=equation-katex] >> nth=0")
            _shot(page, shots, f"{label}-equations")


def _check_hnn(page, data, shots, label):
    page.click("[data-testid=tab-hnn]")
    rows = page.locator("[data-testid=hnn-row]")
    assert rows.count() == len(data["hnn_table"])
    paper = page.locator("[data-testid=hnn-paper]").all_inner_texts()
    assert paper[0].strip() == "0.17" and "10" in paper[1] and paper[3].strip() == "—"
    assert "Greydanus" in page.inner_text("[data-testid=panel-hnn]")
    pixel = data.get("hnn_pixel")
    if pixel:
        lines = page.locator("[data-testid=pixel-ratios]")
        assert lines.count() == len(pixel["ratios_by_horizon"])
        for i, (step, by_h) in enumerate(pixel["ratios_by_horizon"].items()):
            text = lines.nth(i).inner_text()
            assert {"euler": "Euler", "rk4": "RK4"}[step] in text
            assert all(f"{h} frames" in text for h in by_h if h != "span")
        found = pixel["latent_discovery"]
        assert page.locator("[data-testid=pixel-latent-row]").count() == len(found)
        with_law = sum(1 for f in found if f["latex"])
        assert page.locator("[data-testid=pixel-law] .katex").count() == with_law
    _shot(page, shots, f"{label}-hnn")


# ------------------------------------------------------------------------------ browser tests

MODES = {
    # label: (scheme, query, how the CDN answers, libraries expected from, check every tab)
    "http-local": ("http", "?dev=1", "abort", "local", True),   # React dev build: strict warnings
    "file-local": ("file", "", "abort", "local", False),
    "http-cdn-stalled": ("http", "?cdn=1&cdn_timeout=700", "stall", "local", False),
    "file-cdn-failing": ("file", "?cdn=1", "abort", "local", False),
    "file-cdn-served": ("file", "?cdn=1", "serve", "cdn", False),
}


@pytest.mark.parametrize("label", list(MODES))
def test_dashboard_tabs(browser, serve, site, data, tmp_path, label):
    scheme, query, cdn, expected_source, full = MODES[label]
    base = serve(site) if scheme == "http" else site.as_uri() + "/"
    context, page, watch, seconds = _open(browser, base + "index.html" + query, cdn=cdn)
    try:
        assert page.locator("[data-testid=app]").count() == 1, page.inner_text("body")
        boot = page.evaluate("window.__DASHBOARD_BOOT")
        assert boot["failed"] == [] and boot["data"] == "loaded"
        sources = set(boot["sources"].values())
        if expected_source == "local":
            assert sources == {"local"}, boot["sources"]
        else:
            assert sources == {_manifest()["cdn"][0]}, boot["sources"]
        if boot["cdnFirst"]:
            first = {}
            for attempt in boot["attempts"]:
                first.setdefault(attempt["lib"], attempt["url"])
            assert all(_is_cdn(url) for url in first.values()), first   # the CDN was tried first
            assert seconds < 10, f"CDN fallback took {seconds:.1f} s"
        _check_header(page, data)
        if full:
            _check_trajectory(page, data, tmp_path, label)
            _check_energy(page, data, tmp_path, label)
            _check_latent(page, data, tmp_path, label)
            _check_equations(page, data, tmp_path, label)
            _check_hnn(page, data, tmp_path, label)
        else:   # the same app, its libraries loaded another way: a look at two tabs
            assert _long_curves(page, "[data-testid=panel-trajectory]") >= 3
            page.click("[data-testid=play-button]")
            page.wait_for_function("() => !document.querySelector('[data-testid=time-readout]')"
                                   ".innerText.includes('step 1/')", timeout=5000)
            page.click("[data-testid=tab-equations]")
            n = len(data["systems"]["projectile"]["equations"])
            assert page.locator("[data-testid=equation-katex] .katex").count() == n
            _shot(page, tmp_path, f"{label}-equations")
        assert watch.errors == []
        print(f"{label}: ready in {seconds:.2f} s; {len(watch.allowed)} blocked CDN requests ignored")
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_missing_data_file_shows_message(browser, serve, tmp_path, scheme):
    folder = _site(tmp_path / "site", data=NO_FILE)
    base = serve(folder) if scheme == "http" else folder.as_uri() + "/"
    context, page, watch, _ = _open(
        browser, base + "index.html",
        allowed_failed_url=lambda url: _is_cdn(url) or "dashboard_data.js" in url)
    try:
        message = page.locator("[data-testid=no-data]")
        assert message.is_visible(), page.inner_text("body")
        text = message.inner_text()
        assert "python evaluate.py" in text and "make run" in text and "dashboard_data.js" in text
        assert watch.errors == []
        _shot(page, tmp_path, f"{scheme}-no-data")
    finally:
        context.close()


def test_empty_data_file_shows_message(browser, serve, tmp_path):
    folder = _site(tmp_path / "site", data={"generated": "2026-11-23T18:00:00Z", "systems": {}})
    context, page, watch, _ = _open(browser, serve(folder) + "index.html")
    try:
        assert page.locator("[data-testid=no-data]").is_visible(), page.inner_text("body")
        assert "python evaluate.py" in page.inner_text("[data-testid=no-data]")
        assert watch.errors == []
    finally:
        context.close()


def test_broken_data_file_shows_message(browser, tmp_path):
    """A truncated data file (say an interrupted evaluate.py) is reported as such (file://, where
    the browser hides the script error's details)."""
    folder = _site(tmp_path / "site", data=NO_FILE)
    (folder / "dashboard_data.js").write_text('window.DASHBOARD_DATA = {"generated": "2026-')
    context, page, watch, _ = _open(browser, folder.as_uri() + "/index.html")
    try:
        text = page.inner_text("[data-testid=no-data]")
        assert "could not be read" in text and "python evaluate.py" in text
        # the one expected error: the truncated file's syntax error
        assert len(watch.errors) == 1 and watch.errors[0].startswith("page error:"), watch.errors
    finally:
        context.close()


def test_sparse_data_never_blank(browser, serve, tmp_path, data):
    """Nulls and empty lists everywhere: every tab still says something, and nothing throws."""
    sparse = json.loads(json.dumps(data))
    sparse["hnn_table"] = None
    sparse["generated"] = None
    sparse["backend"] = None
    sparse["systems"] = {"bare": {"variables": ["q"], "canonical": None, "has_truth": False,
                                  "trajectories": [], "energy": [], "drift": None, "latent": None,
                                  "n_conserved": None, "equations": []},
                         "spring": sparse["systems"]["spring"]}
    spring = sparse["systems"]["spring"]
    for tr in spring["trajectories"]:
        tr["standard"] = None
        tr["true"][5] = None
        tr["physics"][7] = [None, None]
    for e in spring["energy"]:
        e["standard"] = None
    spring["latent"]["color_by"] = {}
    spring["equations"][0].update(latex=None, r2=None, conservation_ratio=None, matched=None,
                                  structure_match=None, complexity=None)
    spring["equations"][0]["pareto"][2]["loss"] = None
    # the fields of approximate laws and recordings, half empty
    spring["equations"].append({
        "kind": "approximate", "name": "E~", "expression": "x**2", "latex": "x^{2}",
        "approximate": True, "counted": False, "mu": None, "mu_threshold": 1.8, "pareto": [],
        "uncertainty": {"method": None, "coefficients": [
            {"term": "x**2", "latex": None, "value": None, "err": None}, None]},
        "decay": {"kept": None, "loss_law": None, "loss_law_latex": None,
                  "pareto": [None, {"complexity": None, "loss": None}]}})
    spring.update(recording=True, recording_info={"description": None, "series": [
        {"t": [0, 1, 2], "states": [None, [1, None], [1, 2]], "held_out_from": None}, None]},
        decay={"equation": None, "kept": None, "series": [
            {"t": [0, 1, 2], "energy": [None, 1, 0.5], "predicted": None}, None]})
    folder = _site(tmp_path / "site", data=sparse)
    context, page, watch, _ = _open(browser, serve(folder) + "index.html")
    try:
        assert page.locator("[role=tab]").count() == 4               # no HNN tab without a table
        for system in ("bare", "spring"):
            page.select_option("[data-testid=system-select]", system)
            for tab in TABS[:4]:
                page.click(f"[data-testid=tab-{tab}]")
                panel = page.locator(f"[data-testid=panel-{tab}]")
                assert panel.inner_text().strip(), f"{system}/{tab} is blank"
                assert page.locator("[data-testid=panel-error]").count() == 0, panel.inner_text()
        page.select_option("[data-testid=system-select]", "bare")
        for tab, notice in [("trajectory", "trajectory-unavailable"), ("energy", "energy-unavailable"),
                            ("latent", "latent-unavailable"), ("equations", "equations-unavailable")]:
            page.click(f"[data-testid=tab-{tab}]")
            assert page.locator(f"[data-testid={notice}]").is_visible(), tab
        page.select_option("[data-testid=system-select]", "spring")
        page.click("[data-testid=tab-equations]")
        assert page.locator("[data-testid=equation-source]").count() == 1    # no LaTeX: plain text
        assert page.locator("[data-testid=approximate-badge]").count() == 1
        assert page.locator("[data-testid=coef-row]").count() == 1
        page.click("[data-testid=tab-energy]")
        assert page.locator("[data-testid=decay-chart]").is_visible()
        page.click("[data-testid=tab-trajectory]")
        assert _long_curves(page, "[data-testid=main-plot]") >= 2
        assert watch.errors == []
        _shot(page, tmp_path, "sparse-trajectory")
    finally:
        context.close()


def test_missing_libraries_show_message(browser, serve, tmp_path):
    """No node_modules and no CDN: a clear message, quickly, instead of a spinner or blank page."""
    folder = _site(tmp_path / "site", data=make_data(), node_modules=False)
    context, page, watch, seconds = _open(
        browser, serve(folder) + "index.html",
        allowed_failed_url=lambda url: _is_cdn(url) or "/node_modules/" in url)
    try:
        error = page.locator("[data-testid=load-error]")
        assert error.is_visible(), page.inner_text("body")
        assert "npm ci" in error.inner_text() and "react" in error.inner_text()
        assert seconds < 10 and watch.errors == []
        _shot(page, tmp_path, "no-libraries")
    finally:
        context.close()


def test_optional_libraries_missing_degrade_gracefully(browser, serve, tmp_path, data):
    """Without KaTeX (and Tailwind) the page still works: equations as LaTeX source, a warning."""
    packages = [p.name for p in NODE_MODULES.iterdir() if p.name not in {"katex", "@tailwindcss", ".bin"}]
    folder = _site(tmp_path / "site", data=data, node_modules=packages)
    context, page, watch, _ = _open(
        browser, serve(folder) + "index.html",
        allowed_failed_url=lambda url: _is_cdn(url) or "/node_modules/" in url)
    try:
        warning = page.locator("[data-testid=lib-warning]")
        assert warning.is_visible() and "katex" in warning.inner_text()
        page.click("[data-testid=tab-equations]")
        n = len(data["systems"]["projectile"]["equations"])
        assert page.locator("[data-testid=equation-source]").count() == n
        assert _long_curves(page, "[data-testid=pareto-chart]", 20) == n
        assert watch.errors == []
    finally:
        context.close()


# ------------------------------------------------------------------------------ a real recording

RECORDING_FRAMES = 480
TINY_TRAIN = ["--epochs", "2", "--hidden-dim", "16", "--latent-dim", "4", "--threads", "1",
              "--quiet"]
TINY_DISCOVER = ["--budget", "2000", "--niterations", "2", "--latent-pcs", "1", "--quiet"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """train.py, discover.py and evaluate.py on one damped-pendulum recording (the loader cuts
    it into windows): {"csv", "entry" (discover.py's), "system" (the dashboard's), "size"}."""
    import evaluate
    from data.loader import load_trajectories
    from runs import data_key
    from utils import read_json

    root = tmp_path_factory.mktemp("recording")
    csv = write_recording_csv(root / "lab_pendulum.csv", frames=RECORDING_FRAMES)
    results = root / "results"
    dirs = ["--results-dir", results]
    ok("train", ["--system", csv, *TINY_TRAIN, *dirs])
    ok("discover", ["--system", csv, *TINY_DISCOVER, *dirs])
    argv = ["--systems", csv, "--results-dir", results, "--plots-dir", root / "plots",
            "--dashboard-file", root / "site" / "dashboard_data.js", "--quiet"]
    args = evaluate.parse_args([str(a) for a in argv])
    data = load_trajectories(csv, args.data_dir, with_truth=True)
    key = data_key(data.source, args.data_dir)
    entry = read_json(results / "discovered_equations.json")[key]
    ok("evaluate", argv)
    path = Path(args.dashboard_file)
    text = path.read_text(encoding="utf-8")
    payload = json.loads(text[text.index("{"):text.rindex("}") + 1])
    return {"csv": csv, "entry": entry, "system": payload["systems"][key],
            "size": path.stat().st_size}


def _csv_states(csv: Path) -> tuple[list[float], list[list[float]]]:
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    return [float(r[1]) for r in rows], [[float(r[2]), float(r[3])] for r in rows]


def _evaluate(expression: str, theta: float, omega: float) -> float:
    import sympy as sp

    from utils import parse_expression
    syms = {"theta": sp.Symbol("theta"), "omega": sp.Symbol("omega")}
    return float(parse_expression(expression, syms).subs({syms["theta"]: theta,
                                                          syms["omega"]: omega}))


def _r2(y: list[float], fit: list[float]) -> float:
    mean = sum(y) / len(y)
    return 1 - sum((a - b) ** 2 for a, b in zip(y, fit)) / sum((a - mean) ** 2 for a in y)


def test_recording_fields_from_the_pipeline(recording):
    sys_, entry = recording["system"], recording["entry"]
    assert sys_["recording"] is True and sys_["has_truth"] is False
    info = sys_["recording_info"]
    assert info["frames"] == [RECORDING_FRAMES] and info["recordings"] == 1
    assert "cut into" in info["description"]
    (whole,) = info["series"]
    assert 100 < len(whole["t"]) <= 500 and all(len(x) == 2 for x in whole["states"])
    assert all(b > a for a, b in zip(whole["t"], whole["t"][1:])), "not in time order"
    t_csv, x_csv = _csv_states(recording["csv"])
    assert whole["t"][0] == t_csv[0] and whole["states"][0] == pytest.approx(x_csv[0], abs=1e-4)
    assert whole["t"][0] < whole["held_out_from"] < whole["t"][-1]

    # the energy that friction drains: listed, flagged, never counted
    approx = [e for e in sys_["equations"] if e["kind"] == "approximate"]
    assert [e["name"] for e in approx] == ["E~"]
    e = approx[0]
    assert e["approximate"] is True and e["counted"] is False
    assert e["mu"] > e["mu_threshold"] > 0 and "not exactly conserved" in e["reason"]
    assert sys_["n_conserved"] == sum(q["counted"] for q in sys_["equations"]) == \
        entry["n_conserved"]
    assert e["conservation_ratio_discover"] == pytest.approx(
        next(q for q in entry["equations"] if q["name"] == "E~")["conservation_ratio"])

    # coefficients +- their spread: the same law as the expression, the pendulum's energy
    rows = {r["term"]: r for r in e["uncertainty"]["coefficients"]}
    assert set(rows) == {"omega**2", "cos(theta)"}
    assert all(r["latex"] and 0 < r["err"] < 0.05 * abs(r["value"]) for r in rows.values())
    for theta, omega in x_csv[:: 97]:
        by_terms = (rows["omega**2"]["value"] * omega ** 2
                    + rows["cos(theta)"]["value"] * __import__("math").cos(theta))
        assert by_terms == pytest.approx(_evaluate(e["expression"], theta, omega), rel=1e-4)
    assert -rows["cos(theta)"]["value"] / (2 * rows["omega**2"]["value"]) == \
        pytest.approx(W2, rel=0.03)

    # the decay: the energy along the recording in time order, and its integrated loss law
    block = e["decay"]
    assert block["loss_law"].startswith("dE/dt =") and block["loss_law_latex"].startswith(r"\dot E")
    assert 0.2 < block["kept"] < 0.8 and block["explained"] > 0.9 and block["pareto"]
    decay = sys_["decay"]
    assert decay["equation"] == "E~" and decay["kept"] == block["kept"]
    assert decay["loss_law"] == block["loss_law"]
    (one,) = decay["series"]
    t, energy, predicted = one["t"], one["energy"], one["predicted"]
    assert 100 < len(t) <= 500 and len(energy) == len(predicted) == len(t)
    assert all(b > a for a, b in zip(t, t[1:]))
    # measured from discover.py's zero: the law on the first recorded state, less that zero
    assert energy[0] == pytest.approx(_evaluate(e["expression"], *x_csv[0]) - block["zero"],
                                      abs=1e-4)
    tenth = len(energy) // 10
    start, end = sum(energy[:tenth]) / tenth, sum(energy[-tenth:]) / tenth
    assert min(energy) > -0.05 and end < 0.8 * start
    assert end / start == pytest.approx(block["kept"], abs=0.1)
    assert _r2(energy, predicted) > 0.95, "the integrated loss law misses the decay"
    assert recording["size"] < 300_000


def _damped_oscillator(t, c: float = 0.2, amplitude: float = 1.0):
    """x'' = -x - c x' from x = amplitude, v = 0: states (..., 2) and the energy
    (x^2 + v^2) / 2, which it loses at dE/dt = -c v^2."""
    import numpy as np

    wd = np.sqrt(1 - c * c / 4)
    decay = amplitude * np.exp(-c * t / 2)
    x = decay * (np.cos(wd * t) + c / (2 * wd) * np.sin(wd * t))
    v = -decay * np.sin(wd * t) / wd
    return np.stack([x, v], axis=-1), 0.5 * (x * x + v * v)


DAMPED_ENTRY = {"variables": ["x", "v"], "derived_inputs": {}, "n_conserved": 0,
                "equations": [{"kind": "approximate", "name": "E~",
                               "expression": "0.5*x**2 + 0.5*v**2",
                               "decay": {"zero": -0.25, "loss_law": "dE/dt = -0.2*v**2",
                                         "kept": 0.5, "explained": 0.99}}]}


@pytest.mark.parametrize("frames", [[1000], [600, 400]])
def test_decay_series_of_recordings_is_the_energy_in_time_order(frames):
    """Windows of recordings are joined back in time order; the integrated loss law follows
    the closed-form energy of a damped oscillator."""
    import numpy as np

    from data.loader import Trajectories
    from evaluation.dashboard import decay_series, recording_series
    from evaluation.system import SystemResult

    window, states, times, split = 100, [], [], []
    for n in frames:
        t = np.arange(n) * 0.01
        x, _ = _damped_oscillator(t)
        for k in range(n // window):
            states.append(x[k * window:(k + 1) * window])
            times.append(t[k * window:(k + 1) * window])
            split.append("train" if k < n // window - 2 else "test")
    meta = {"recording": {"recordings": len(frames), "frames": frames, "window": window}}
    data = Trajectories("rec", "rec.csv", np.array(states), np.array(times), ["x", "v"],
                        ["q", "p"], np.array(split), meta)
    res = SystemResult("rec", {}, data, None, np.flatnonzero(data.split == "test"),
                       discovered=DAMPED_ENTRY)
    out = decay_series(res, SimpleNamespace(n_dashboard=5))
    assert [s["id"] for s in out["series"]] == list(range(len(frames)))
    for one, n in zip(out["series"], frames):
        t = np.array(one["t"])
        assert len(t) <= 500 // len(frames) and t[0] == 0 and t[-1] == pytest.approx(0.01 * (n - 1))
        assert np.all(np.diff(t) > 0)
        _, energy = _damped_oscillator(t)
        assert np.allclose(one["energy"], energy + 0.25, atol=1e-5)      # from the zero
        assert np.allclose(one["predicted"], one["energy"], atol=1e-4)
        assert one["held_out_from"] == pytest.approx(0.01 * (n - 2 * window))
    whole = recording_series(res)
    assert [len(w["t"]) for w in whole] == [len(s["t"]) for s in out["series"]]
    assert np.allclose(whole[0]["states"], _damped_oscillator(np.array(whole[0]["t"]))[0],
                       atol=1e-4)


def test_decay_series_of_trajectories_and_bad_formulas():
    """A trajectory file: the held-out trajectories shown, nothing marked held out; an
    unparsable loss law leaves no prediction, an unparsable energy no series."""
    import numpy as np

    from data.loader import Trajectories
    from evaluation.dashboard import decay_series
    from evaluation.system import SystemResult

    t = np.arange(300) * 0.02
    amplitudes = np.linspace(0.5, 2.0, 6)
    states = np.stack([_damped_oscillator(t, amplitude=a)[0] for a in amplitudes])
    data = Trajectories("osc", "osc.npz", states, np.broadcast_to(t, (6, 300)).copy(),
                        ["x", "v"], ["q", "p"], np.array(["train"] * 3 + ["test"] * 3))
    res = SystemResult("osc", {}, data, None, np.array([3, 4, 5]), discovered=DAMPED_ENTRY)
    out = decay_series(res, SimpleNamespace(n_dashboard=2))
    assert [s["id"] for s in out["series"]] == [3, 4]
    for one, a in zip(out["series"], amplitudes[3:]):
        assert one["held_out_from"] is None
        assert len(one["t"]) == 250                  # 500 points shared by the series
        energy = _damped_oscillator(np.array(one["t"]), amplitude=a)[1]
        assert np.allclose(one["energy"], energy + 0.25, atol=1e-5)
        assert np.allclose(one["predicted"], one["energy"], atol=1e-4 * a * a)
    broken = json.loads(json.dumps(DAMPED_ENTRY))
    broken["equations"][0]["decay"]["loss_law"] = "dE/dt = __import__('os')"
    res.discovered = broken
    assert all(s["predicted"] is None for s in decay_series(res, SimpleNamespace(
        n_dashboard=2))["series"])
    broken["equations"][0]["expression"] = "x.__class__"
    assert decay_series(res, SimpleNamespace(n_dashboard=2)) is None


def _recording_site(tmp_path, recording):
    data = make_data()
    data["systems"] = {"lab-recording": recording["system"], "spring": data["systems"]["spring"]}
    data["hnn_table"] = None
    return _site(tmp_path / "site", data=data)


def test_recording_renders(browser, serve, tmp_path, recording):
    sys_ = recording["system"]
    approx = next(e for e in sys_["equations"] if e["kind"] == "approximate")
    context, page, watch, _ = _open(browser, serve(_recording_site(tmp_path, recording))
                                    + "index.html?dev=1")      # React's warnings too
    try:
        assert page.locator("[data-testid=recording-note]").is_visible()
        # trajectory: the held-out windows as for any system, and the whole recording
        assert _long_curves(page, "[data-testid=main-plot]") >= 2
        assert _long_curves(page, "[data-testid=recording-states]", 1000) == 2
        assert _long_curves(page, "[data-testid=recording-phase]", 1000) >= 1
        assert page.locator("[data-testid=recording-states] .held-out-area").count() == 1
        _shot(page, tmp_path, "recording-trajectory")

        # energy: the decaying energy beside its integrated loss law
        page.click("[data-testid=tab-energy]")
        chart = "[data-testid=decay-chart]"
        assert _long_curves(page, chart, 1000) == 2
        assert page.locator(f"{chart} .decay-energy path.recharts-curve").count() == 1
        assert page.locator(f"{chart} .decay-predicted path.recharts-curve").count() == 1
        assert page.locator(f"{chart} .held-out-area").count() == 1
        assert page.inner_text("[data-testid=decay-chart-kept]") == \
            f"{100 * sys_['decay']['kept']:.1f}%"
        assert page.inner_text("[data-testid=decay-chart-explained]") == \
            f"{100 * sys_['decay']['explained']:.1f}%"
        assert page.locator("[data-testid=decay-law-katex] .katex").count() == 1
        assert "\u1ebc" in page.inner_text(chart)          # E~ shown as E with a tilde
        assert page.locator("[data-testid=energy-unavailable]").is_visible()   # no true energy
        _shot(page, tmp_path, "recording-energy")

        # equations: flagged, mu against its threshold, coefficients +- spread, decay block
        page.click("[data-testid=tab-equations]")
        card = page.locator("[data-testid=equation-card][data-kind=approximate]")
        assert card.count() == 1
        assert card.locator("[data-testid=approximate-badge]").inner_text() == \
            "approximate — not counted"
        assert card.locator("[data-testid=counted-badge]").count() == 0
        assert page.locator("[data-testid=approximate-badge]").count() == 1
        assert "1 approximate, not counted" in page.inner_text("[data-testid=n-approximate]")
        assert page.inner_text("[data-testid=n-conserved]").strip() == str(sys_["n_conserved"])
        mu = card.locator("[data-testid=mu-stat]").inner_text()
        assert mu.startswith(f"{approx['mu']:.3g}") and ">" in mu
        coefs = approx["uncertainty"]["coefficients"]
        rows = card.locator("[data-testid=coef-row]")
        assert rows.count() == len(coefs)
        assert card.locator("[data-testid=coef-term] .katex").count() == len(coefs)
        for row, coef in zip(rows.all(), coefs):
            value = row.locator("[data-testid=coef-value]").inner_text()
            shown, err = (float(v) for v in value.split("±"))
            assert shown == pytest.approx(coef["value"], rel=1e-4)
            assert err == pytest.approx(coef["err"], rel=0.05)
        block = card.locator("[data-testid=decay-block]")
        assert f"{100 * approx['decay']['kept']:.1f}%" in block.inner_text()
        assert f"{100 * approx['decay']['explained']:.1f}%" in block.inner_text()
        assert block.locator("[data-testid=loss-law-katex] .katex").count() == 1
        assert approx["decay"]["loss_law"] in block.inner_text()
        assert _long_curves(page, "[data-testid=loss-law-chart]", 20) == 1   # its own front
        assert page.locator("[data-testid=equation-katex] .katex").count() == \
            len(sys_["equations"])
        _shot(page, tmp_path, "recording-equations")

        page.select_option("[data-testid=system-select]", "spring")   # a plain system: no flags
        assert page.locator("[data-testid=approximate-badge]").count() == 0
        assert page.locator("[data-testid=counted-badge]").count() == 1
        page.click("[data-testid=tab-energy]")
        assert page.locator("[data-testid=decay-chart]").count() == 0
        assert _long_curves(page, "[data-testid=energy-chart]") == 3
        assert watch.errors == []
    finally:
        context.close()
