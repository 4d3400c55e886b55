"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright.

The app runs for real (uvicorn on a free port, embedded worker, temporary data dir). The tests
upload a document, watch its ingestion status change live, ask a question, open a citation's
passage, manage a document and show the releases page. Screenshots are written under
``var/test-artifacts/console/`` (the path is printed).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from core.settings import BrokerSettings, Settings
from evaluation import runner
from evaluation.release import RELEASES_DIR, load_release
from evaluation.suites import load_suite
from serving.app import create_app
from stores.catalog.evaluation import EvalStore
from tests.conftest import FIXTURES, REQUIRE_SERVICES, SHARED_DATASETS
from tests.support.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "console"
MEMO = "unstructured_fake-memo.pdf"
HANDBOOK = "docling_amt_handbook_sample.pdf"
SLOW = 120_000  # ms: ingestion of the first document loads the embedding model


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path, why = None, "the Python package playwright is not installed (pip install -e '.[dev]')"
    else:
        why = "Chromium is not installed (`make browser`: apt-get install chromium)"
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(why)
        pytest.skip(why)
    return path


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    settings: Settings
    catalog: Any


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real app over HTTP, as `make run` serves it, with three tenants."""
    _chromium()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("console") / "var",
        broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
    )
    app = create_app(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    catalog = app.state.runtime.catalog
    keys = {}
    for tenant in ("acme", "globex", "initech"):
        catalog.tenants.create(tenant)
        keys[tenant], _ = catalog.tenants.create_key(tenant)
    yield Server(f"http://127.0.0.1:{port}", keys, settings, catalog)
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {ARTIFACTS}")
    with sync_playwright() as pw:
        # --no-sandbox: CI and these containers run as root, where Chromium's sandbox cannot start.
        chromium = pw.chromium.launch(
            executable_path=_chromium(), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


def new_page(browser: Any, server: Server, locale: str = "en-GB") -> Any:
    context = browser.new_context(
        base_url=server.url,
        locale=locale,
        viewport={"width": 1366, "height": 768},  # a laptop screen
        accept_downloads=True,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.js_errors = errors
    return page


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = new_page(browser, server)
    yield page
    shot(page, f"{request.node.name}-end")
    errors = page.js_errors
    page.context.close()
    assert errors == [], f"JavaScript errors in the console: {errors}"


def shot(page: Any, name: str) -> None:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in(page: Any, key: str) -> None:
    page.goto("/")
    page.locator("#api-key").fill(key)
    page.keyboard.press("Enter")
    page.locator("#dropzone").wait_for()


def drop_files(page: Any, *files: tuple[str, bytes, str]) -> None:
    """A real drop event on the drop zone, carrying Files (name, bytes, type) built in the page."""
    page.locator("#dropzone").evaluate(
        """(zone, files) => {
            const dt = new DataTransfer();
            for (const [name, bytes, mime] of files) {
                dt.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            }
            for (const type of ["dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
            }
        }""",
        [[name, list(data), mime] for name, data, mime in files],
    )


def image_pdf() -> bytes:
    """A scanned page: no text to extract."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(out, "PDF")
    return out.getvalue()


def record_statuses(page: Any) -> None:
    """Keep every status each upload row shows, in order, to check the live updates."""
    page.evaluate(
        """() => {
            window.seen = {};
            const note = (li) => {
                const list = (window.seen[li.dataset.name] ??= []);
                if (list.at(-1) !== li.dataset.status) list.push(li.dataset.status);
            };
            new MutationObserver(() => document.querySelectorAll("li.upload").forEach(note))
                .observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )


def upload_row(page: Any, name: str) -> Any:
    return page.locator(f'li.upload[data-name="{name}"]')


def doc_fixture(name: str) -> Path:
    """A PDF from ../shared/datasets/doc_fixtures when present, else its copy in tests."""
    shared = SHARED_DATASETS / "doc_fixtures" / "pdf" / name
    return shared if shared.exists() else FIXTURES / name


# -- the user journey of the issue ------------------------------------------------------------


def test_upload_wait_ready_ask_and_open_a_cited_passage(page: Any, server: Server) -> None:
    memo, handbook = doc_fixture(MEMO), doc_fixture(HANDBOOK)
    sign_in(page, server.keys["acme"])
    page.locator("#upload-collection").fill("memos")
    record_statuses(page)
    page.locator("#file-input").set_input_files([str(memo), str(handbook)])
    for source in (memo, handbook):
        row = upload_row(page, source.name)
        row.locator('[data-status="ready"]').wait_for(timeout=SLOW)
        assert row.locator("progress").get_attribute("value") == "1"
    seen = page.evaluate("() => window.seen")
    order = ["uploading", "queued", "parsing", "indexing", "ready"]
    for statuses in (seen[memo.name], seen[handbook.name]):
        assert statuses[:2] == ["uploading", "queued"] and statuses[-1] == "ready", statuses
        assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    # The handbook page takes seconds to parse and index: its row showed the stages live.
    assert {"parsing", "indexing"} & set(seen[handbook.name]), seen
    listed = page.locator("#documents tr", has_text="memos")
    expect(listed).to_have_count(2)
    expect(listed.locator('[data-status="ready"]')).to_have_count(2)
    assert not page.locator("#more").is_visible()  # one page only
    page.reload()  # the collection filter lists "memos" once it exists
    options = page.locator("#filter-collection option")
    expect(options).to_have_text(["All", "memos"])  # filled once the collections arrive
    page.locator("#filter-collection").select_option("memos")
    page.locator("#filter-status").select_option("failed")
    page.locator(".empty", has_text="No document matches").wait_for()
    page.locator("#filter-status").select_option("ready")
    expect(page.locator("#documents tr")).to_have_count(2)
    shot(page, "1-documents-ready")

    page.get_by_role("link", name="Ask").click()
    page.locator("#ask-collection").select_option("memos")
    page.locator("#question").fill("How many trucks were used?")
    page.locator("#question").press("Enter")
    answer = page.locator(".turn .answer").last
    answer.locator("button.citation").first.wait_for(timeout=SLOW)
    assert "3 trucks" in answer.locator(".text").inner_text()
    assert answer.locator(".not-found").count() == 0
    shot(page, "2-answer")

    answer.locator("button.citation").first.click()
    dialog = page.locator("dialog#passage")
    dialog.wait_for()
    assert dialog.locator("#passage-title").inner_text() == memo.stem
    assert "p. 1" in dialog.locator(".where").inner_text()
    mark = dialog.locator("#passage-text mark")
    assert " ".join(mark.inner_text().split()) == "A total of 3 trucks were used for 15 hours."
    # The highlight sits inside the passage's own text, not beside it.
    full = " ".join(dialog.locator("#passage-text").inner_text().split())
    assert " ".join(mark.inner_text().split()) in full and len(full) > len(mark.inner_text())
    shot(page, "3-cited-passage")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()

    page.locator("#question").fill("What is the boiling point of mercury on Venus?")
    page.locator("#send").click()
    page.locator(".turn .answer").last.locator(".not-found").wait_for(timeout=SLOW)
    assert page.locator(".turn .answer").last.locator("button.citation").count() == 0
    shot(page, "4-not-found")


def test_document_detail_download_new_version_and_delete(page: Any, server: Server) -> None:
    sign_in(page, server.keys["acme"])
    page.locator("#upload-tags").fill("safety, plant")
    record_statuses(page)
    v1 = b"# Boiler room\n\nThe boiler room door must stay closed at all times.\n"
    # Many files in one drop, each with its own row; an empty file is refused by the API, and
    # the row says why.
    drop_files(page, ("boiler.md", v1, "text/markdown"), ("empty.md", b"", "text/markdown"))
    upload_row(page, "boiler.md").locator('[data-status="ready"]').wait_for(timeout=SLOW)
    failed = upload_row(page, "empty.md")
    failed.locator('[data-status="failed"]').wait_for()
    assert "empty" in failed.locator(".cause").inner_text().lower()
    # ... and a document the worker cannot read fails its job, with the cause shown.
    drop_files(page, ("scan.pdf", image_pdf(), "application/pdf"))
    scan = upload_row(page, "scan.pdf")
    scan.locator('[data-status="failed"]').wait_for(timeout=SLOW)
    assert "no extractable text" in scan.locator(".cause").inner_text()
    assert page.evaluate("() => window.seen")["scan.pdf"][:2] == ["uploading", "queued"]
    page.locator("#filter-status").select_option("failed")
    expect(page.locator("#documents tr")).to_have_count(1)
    assert page.locator("#documents tr").inner_text().startswith("scan")
    page.locator("#filter-status").select_option("")

    page.locator("#filter-tag").fill("safety")
    expect(page.locator("#documents tr")).to_have_count(2)  # boiler.md and scan.pdf
    page.locator("#filter-title").fill("boiler")
    expect(page.locator("#documents tr")).to_have_count(1)
    assert page.locator("#documents tr .tag").all_inner_texts() == ["plant", "safety"]
    page.locator("#documents a", has_text="boiler").click()
    page.locator("#doc-title").wait_for()
    version = page.locator('#versions tr[data-version="1"]')
    assert int(version.locator(".chunks").inner_text()) >= 1
    assert version.locator(".entities").inner_text().strip().isdigit()

    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename == "boiler.md"
    assert Path(download.value.path()).read_bytes() == v1

    page.locator("#new-version").set_input_files(
        files=[{"name": "boiler-v2.md", "mimeType": "text/markdown", "buffer": v1 + b"\nV2.\n"}]
    )
    page.locator('#versions tr[data-version="2"] [data-status="ready"]').wait_for(timeout=SLOW)
    shot(page, "5-document-detail")

    page.locator("#delete").click()
    page.locator("dialog#confirm-delete").wait_for()
    page.get_by_role("button", name="Cancel").click()
    assert page.locator("#doc-title").is_visible()
    page.locator("#delete").click()
    page.locator("#confirm-delete-button").click()
    page.wait_for_url("**/#/documents", timeout=SLOW)
    page.locator("#filter-title").fill("boiler")
    page.locator(".empty", has_text="No document matches").wait_for()


def test_a_drop_of_many_files_sends_three_at_a_time(page: Any, server: Server) -> None:
    sign_in(page, server.keys["initech"])
    page.evaluate(
        """() => {
            window.uploading = { now: 0, max: 0 };
            const send = XMLHttpRequest.prototype.send;
            XMLHttpRequest.prototype.send = function (body) {
                const u = window.uploading;
                u.now += 1;
                u.max = Math.max(u.max, u.now);
                // readyState 4 comes before "load", whose handler frees the slot
                this.addEventListener("readystatechange", () => this.readyState === 4 && (u.now -= 1));
                return send.call(this, body);
            };
        }"""
    )
    notes = [
        (f"note-{i}.md", f"# Note {i}\n\nNote number {i}.\n".encode(), "text/markdown")
        for i in range(5)
    ]
    drop_files(page, *notes)
    for name, _, _ in notes:
        upload_row(page, name).locator('[data-status="ready"]').wait_for(timeout=SLOW)
    assert page.evaluate("() => window.uploading") == {"now": 0, "max": 3}
    expect(page.locator("#documents tr")).to_have_count(5)


# -- releases (the evaluation API is served by another component) ---------------------------

RELEASES = {
    "production": "rel-a",
    "releases": [
        {
            "id": "rel-a",
            "name": "baseline",
            "production": True,
            "created_at": "2026-11-01T10:00:00Z",
            "latest_runs": [
                {
                    "id": "run-a",
                    "suite": "fr-qa",
                    "suite_id": "s1",
                    "scores": {"faithfulness": 0.81, "answer_relevancy": 0.77},
                    "finished_at": "2026-11-02T10:00:00Z",
                    "report_url": "/v1/eval/runs/run-a/report.html",
                }
            ],
        },
        {
            "id": "rel-b",
            "name": "reranker",
            "production": False,
            "created_at": "2026-11-10T10:00:00Z",
            "latest_runs": [
                {
                    "id": "run-b",
                    "suite": "fr-qa",
                    "suite_id": "s1",
                    "scores": {"faithfulness": 0.74, "answer_relevancy": 0.80},
                    "finished_at": "2026-11-11T10:00:00Z",
                    "report_url": "/v1/eval/runs/run-b/report.html",
                }
            ],
        },
    ],
}
REPORT = "<html><body><h1>Evaluation run-b</h1><svg width='80' height='40'><rect width='80' height='40'/></svg></body></html>"


def test_releases_over_the_real_evaluation_harness(page: Any, server: Server) -> None:
    """Two releases scored on the tiny suite by the real harness, shown, reported and put
    through the real gate from the page (a key of the `default` tenant, the default promoter)."""
    server.catalog.tenants.create("default")
    promoter, _ = server.catalog.tenants.create_key("default")
    sign_in(page, promoter)
    page.goto("/#/releases")
    assert "No releases yet" in page.locator("#releases-state").inner_text()

    store = EvalStore(server.catalog)
    suite = load_suite(str(FIXTURES / "eval_suite" / "suite.yaml"))
    default = load_release(RELEASES_DIR / "default.yaml")
    worse = load_release(RELEASES_DIR / "dense-top1.yaml")
    # In a thread: ragas runs its own event loop, and Playwright's holds this thread's.
    with ThreadPoolExecutor(1) as pool:
        scored = {
            r.id: pool.submit(runner.run, server.settings, r, suite, store).result()
            for r in (default, worse)
        }

    page.reload()
    assert "No release is in production" in page.locator("#production").inner_text()
    cards = {r.id: page.locator(f'#candidates article[data-id="{r.id}"]') for r in (default, worse)}
    for release_id, card in cards.items():
        cell = card.locator('[data-metric="recall@k"]')
        assert cell.inner_text() == f"{scored[release_id].scores['recall@k']:.3f}"

    cards[default.id].locator(".report-button").click()
    report = page.frame_locator(f'#candidates article[data-id="{default.id}"] iframe')
    report.locator("svg").first.wait_for()  # the report's plots, inline
    shot(page, "6-release-report")

    cards[worse.id].locator("select.suite").select_option("tiny")
    cards[worse.id].locator(".promote").click()
    verdict = cards[worse.id].locator(".verdict")
    verdict.locator('[data-promoted="false"]').wait_for()
    assert "recall@k 0.500 is below the floor 0.800" in verdict.locator(".reasons").inner_text()
    assert store.production_id() is None

    cards[default.id].locator("select.suite").select_option("tiny")
    cards[default.id].locator(".promote").click()
    cards[default.id].locator('.verdict [data-promoted="true"]').wait_for()
    page.locator(f'#production article[data-id="{default.id}"]').wait_for(timeout=SLOW)
    assert store.production_id() == default.id
    shot(page, "7-release-promoted")


def test_releases_show_scores_report_and_the_gate_verdict(page: Any, server: Server) -> None:
    """Against the routes' contract, served by the browser's request interception."""
    calls: list[dict[str, Any]] = []

    def releases(route: Any) -> None:
        assert route.request.headers["authorization"] == f"Bearer {server.keys['acme']}"
        route.fulfill(json=RELEASES)

    def report(route: Any) -> None:
        route.fulfill(body=REPORT, content_type="text/html")

    def promote(route: Any) -> None:
        calls.append(json.loads(route.request.post_data or "{}"))
        if len(calls) == 3:
            route.fulfill(
                json={
                    "promoted": True,
                    "release_id": "rel-b",
                    "previous": "rel-a",
                    "reasons": ["every metric within tolerance of production"],
                    "decision_id": "d2",
                }
            )
        elif len(calls) == 1:
            route.fulfill(
                json={
                    "promoted": False,
                    "release_id": "rel-b",
                    "previous": "rel-a",
                    "reasons": ["faithfulness 0.74 < production 0.81 - 0.02"],
                    "decision_id": "d1",
                }
            )
        else:
            route.fulfill(
                status=403, json={"error": "forbidden", "detail": "this key may not promote"}
            )

    page.route("**/v1/releases", releases)
    page.route("**/v1/eval/runs/*/report.html", report)
    page.route("**/v1/releases/rel-b/promote", promote)
    sign_in(page, server.keys["acme"])
    page.goto("/#/releases")
    production = page.locator('#production article[data-id="rel-a"]')
    production.wait_for()
    assert production.locator(".promote").count() == 0
    candidate = page.locator('#candidates article[data-id="rel-b"]')
    assert candidate.locator('[data-metric="faithfulness"]').inner_text() == "0.740"

    candidate.locator(".report-button").click()
    frame = candidate.locator("iframe.report-frame")
    frame.wait_for()
    assert frame.get_attribute("sandbox") == ""
    assert "Evaluation run-b" in page.frame_locator(".report-frame").locator("h1").inner_text()

    candidate.locator("select.suite").select_option("fr-qa")
    candidate.locator(".promote").click()
    verdict = candidate.locator(".verdict")
    verdict.locator('[data-promoted="false"]').wait_for()
    assert "faithfulness 0.74" in verdict.locator(".reasons").inner_text()
    assert calls == [{"suite": "fr-qa"}]
    shot(page, "6-releases-gate-refused")

    candidate.locator(".promote").click()
    verdict.locator(".error", has_text="this key may not promote").wait_for()
    candidate.locator("select.suite").select_option("")
    candidate.locator(".promote").click()
    verdict.locator('[data-promoted="true"]', has_text="Promoted to production").wait_for()
    assert calls[-1] == {}  # no suite chosen: the gate's default


# -- language, session, keyboard --------------------------------------------------------------


def test_french_by_default_when_the_browser_asks_and_the_key_stays_for_the_tab(
    browser: Any, server: Server
) -> None:
    page = new_page(browser, server, locale="fr-FR")
    try:
        page.goto("/")
        assert page.locator("html").get_attribute("lang") == "fr"
        assert page.locator("#login h1").inner_text() == "Connexion"
        page.locator("#api-key").fill("gdr_not-a-key")
        page.keyboard.press("Enter")
        page.locator("#login .error", has_text="Clé refusée").wait_for()

        page.locator("#api-key").fill(server.keys["acme"])
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Questions").wait_for()
        page.reload()
        page.locator("#dropzone").wait_for()  # still signed in: the key is in sessionStorage
        assert page.evaluate("sessionStorage.getItem('gedrag.apiKey')") == server.keys["acme"]
        shot(page, "7-french")

        page.locator("#lang").select_option("en")
        page.get_by_role("link", name="Ask").wait_for()
        page.get_by_role("button", name="Sign out").click()
        page.locator("#login h1", has_text="Sign in").wait_for()
        assert page.evaluate("sessionStorage.getItem('gedrag.apiKey')") is None
        assert page.js_errors == []
    finally:
        page.context.close()


def test_a_revoked_key_brings_back_the_sign_in_form(page: Any, server: Server) -> None:
    key, info = server.catalog.tenants.create_key("initech", name="laptop")
    sign_in(page, key)
    server.catalog.tenants.revoke_key(info.id)
    page.get_by_role("link", name="Ask").click()
    page.locator("#login .error", has_text="Your key was refused").wait_for()
    assert page.evaluate("sessionStorage.getItem('gedrag.apiKey')") is None
    assert not page.locator("#nav").is_visible()


def test_keyboard_only_navigation_reaches_the_file_chooser_and_the_pages(
    page: Any, server: Server
) -> None:
    sign_in(page, server.keys["globex"])
    page.reload()  # focus starts at the top of the page
    page.locator("#dropzone").wait_for()
    focused = []
    for _ in range(10):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    for label in ("Skip to content", "Documents", "Ask", "Releases", "choose files"):
        assert label in focused, focused
    with page.expect_file_chooser() as chooser:
        page.get_by_text("choose files").focus()
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    # Another tenant sees none of acme's documents.
    page.locator(".empty", has_text="No document matches").wait_for()
    page.reload()
    page.locator("#dropzone").wait_for()
    for _ in range(focused.index("Ask") + 1):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator("#question").wait_for()
    page.keyboard.type("What is in the documents?")
    page.keyboard.press("Enter")
    page.locator(".turn .answer .not-found").wait_for(timeout=SLOW)
