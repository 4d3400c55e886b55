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
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from core.access import Role
from core.errors import GedragError
from core.settings import BrokerSettings, Settings
from evaluation import runner
from evaluation.release import RELEASES_DIR, load_release
from evaluation.suites import load_suite
from ingestion.parsing import ParseLimits, parse
from serving.app import create_app
from serving.errors import status_for
from serving.uploads import check_file, parse_tags
from stores.catalog.evaluation import EvalStore
from tests.conftest import FIXTURES, REQUIRE_SERVICES, SHARED_DATASETS
from tests.support.net import free_port
from tests.support.shipped_suites import ship_suites

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "console"
MEMO = "unstructured_fake-memo.pdf"
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


def document_id_of(row: Any) -> str:
    """The id of the document an upload row links to."""
    return str(row.locator("a").get_attribute("href")).removeprefix("#/documents/")


def doc_fixture(name: str) -> Path:
    """A PDF from ../shared/datasets/doc_fixtures when present, else its copy in tests."""
    shared = SHARED_DATASETS / "doc_fixtures" / "pdf" / name
    return shared if shared.exists() else FIXTURES / name


# -- the user journey of the issue ------------------------------------------------------------


def test_upload_wait_ready_ask_and_open_a_cited_passage(page: Any, server: Server) -> None:
    # A two-page scan is read by OCR for seconds: its row shows the stages live, whatever the
    # machine (a one-page text PDF, parsed and indexed between two polls, may not).
    memo, handbook = doc_fixture(MEMO), FIXTURES / "scans" / "gd-0224-scan.tif"
    sign_in(page, server.keys["acme"])
    page.locator("#upload-collection").fill("memos")
    record_statuses(page)
    page.locator("#file-input").set_input_files([str(memo), str(handbook)])
    for source in (memo, handbook):
        row = upload_row(page, source.name)
        row.locator('[data-status="ready"]').wait_for(timeout=SLOW)
        assert row.locator("progress").get_attribute("value") == "1"
    memo_id = document_id_of(upload_row(page, memo.name))
    seen = page.evaluate("() => window.seen")
    # "loading the model" is shown inside indexing while the first job waits for the model.
    # "searchable": found by its words while its embedding runs (progressive indexing).
    rank = {
        "uploading": 0,
        "queued": 1,
        "parsing": 2,
        "indexing": 3,
        "loading": 3,
        "searchable": 4,
        "ready": 5,
    }
    for statuses in (seen[memo.name], seen[handbook.name]):
        assert statuses[:2] == ["uploading", "queued"] and statuses[-1] == "ready", statuses
        assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses)
    # The scan takes seconds to read and index: its row showed the stages live.
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
    memo_title = page.locator(f'#documents tr[data-id="{memo_id}"] a').inner_text()

    page.get_by_role("link", name="Ask").click()
    page.locator("#ask-collection").select_option("memos")
    page.locator("#question").fill("How many trucks were used?")
    page.locator("#question").press("Enter")
    answer = page.locator(".turn .answer").last
    answer.locator("button.citation").first.wait_for(timeout=SLOW)
    assert "3 trucks" in answer.locator(".text").inner_text()
    assert answer.locator(".not-found").count() == 0
    chip = answer.locator("button.citation").first
    assert chip.locator(".chip-title").inner_text() == memo_title
    assert chip.locator(".chip-page").inner_text() == "p. 1"  # the source chip names its page
    shot(page, "2-answer")

    answer.locator("button.citation").first.click()
    dialog = page.locator("dialog#passage")
    dialog.wait_for()
    assert dialog.locator("#passage-title").inner_text() == memo_title
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


# -- first-day fixes: search inside, source chips, editing, causes, French ---------------------


def new_tenant(server: Server, name: str) -> str:
    server.catalog.tenants.create(name)
    key, _ = server.catalog.tenants.create_key(name)
    return key


def api_upload(server: Server, key: str, name: str, data: bytes, **form: str) -> dict[str, Any]:
    """Upload through the API (not the page) and wait for the ingestion to end."""
    import httpx

    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{server.url}/v1/documents", headers=auth, files={"file": (name, data)}, data=form
    )
    assert r.status_code == 202, r.text
    result: dict[str, Any] = r.json()
    deadline = time.monotonic() + SLOW / 1000
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/v1/jobs/{result['job_id']}", headers=auth).json()
        if job["state"] in ("succeeded", "failed"):
            return result
        time.sleep(0.2)
    raise AssertionError(f"{name} was not ingested in time")


def api_get(server: Server, key: str, path: str) -> Any:
    import httpx

    r = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def fold(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
    ).lower()


# Sections of ~90 words: each is a chunk of its own (smaller ones merge with a sibling).
GUIDE = """# Guide du personnel

## Congés payés

Chaque salarié acquiert 2,5 jours ouvrables de congés payés par mois de travail effectif chez
le même employeur, soit 30 jours ouvrables pour une année complète. Les salariées et salariés à
temps partiel ont les mêmes droits que ceux à temps plein. La période de prise des congés est
fixée par l'employeur après consultation du comité social et économique. Le congé principal
doit comprendre au moins 12 jours ouvrables continus entre le 1er mai et le 31 octobre. Les
jours non pris à la fin de la période sont perdus, sauf accord écrit du service du personnel.

## Chaufferie

La porte de la chaufferie reste fermée en permanence et seul le personnel de maintenance en
détient la clé. Une inspection de la chaudière a lieu chaque trimestre par un technicien agréé,
qui consigne ses relevés dans le registre de sécurité. En cas d'odeur de gaz, il faut quitter
la pièce sans actionner aucun interrupteur, puis appeler le numéro d'urgence affiché à
l'entrée. Les produits inflammables ne doivent jamais être entreposés dans ce local, pas même
pour une courte durée pendant des travaux.
""".encode()
NOTES = (
    b"Note de service : le code <img src=x onerror=window.hacked=1> et la balise <b>gras</b> "
    b"s'affichent tels quels dans la console.\n"
)


def test_search_inside_the_documents_marks_the_words_and_sources_name_their_section(
    page: Any, server: Server
) -> None:
    sign_in(page, new_tenant(server, "umbrella"))
    drop_files(page, ("guide.md", GUIDE, "text/markdown"), ("notes.txt", NOTES, "text/plain"))
    for name in ("guide.md", "notes.txt"):
        upload_row(page, name).locator('[data-status="ready"]').wait_for(timeout=SLOW)
    guide = document_id_of(upload_row(page, "guide.md"))

    # No accents typed, plurals and feminines in the text: still marked.
    page.locator("#content-query").fill("conges payes des salaries")
    page.locator("#content-query").press("Enter")
    hit = page.locator("#passages li.hit").first
    hit.wait_for(timeout=SLOW)
    assert hit.get_attribute("data-document") == guide
    assert hit.locator(".where").inner_text().endswith("Congés payés")  # its section
    marked = hit.locator("mark").all_inner_texts()
    assert {"congés", "payés", "salarié", "salariées", "salariés"} <= set(marked), marked
    assert all(fold(m).startswith(("conge", "paye", "salarie")) for m in marked), marked
    assert "Passages found: " in page.locator("#content-status").inner_text()
    shot(page, "8-search-inside")

    # A passage is text, never HTML: the tags it quotes are shown, not run.
    page.locator("#content-query").fill("balise gras console")
    page.locator("#content-send").click()
    notes = page.locator("#passages li.hit", has_text="Note de service")
    notes.wait_for(timeout=SLOW)
    assert "<img src=x onerror=window.hacked=1>" in notes.inner_text()
    assert "<b>gras</b>" in notes.inner_text()
    assert page.locator("#passages img, #passages b").count() == 0
    assert page.evaluate("() => window.hacked") is None

    page.locator("#content-query").fill("xylophone quetzal")
    page.locator("#content-send").click()
    expect(page.locator("#content-status")).to_have_text(
        re.compile("No passage matches|Passages found")
    )

    # The answer's source chip names the section the passage comes from.
    page.get_by_role("link", name="Ask").click()
    page.locator("#question").fill(
        "Combien de jours de congés payés un salarié acquiert-il par mois ?"
    )
    page.locator("#question").press("Enter")
    answer = page.locator(".turn .answer").last
    chip = answer.locator("button.citation").first
    chip.wait_for(timeout=SLOW)
    assert "2,5 jours" in answer.locator(".text").inner_text()
    assert chip.locator(".chip-section").inner_text() == "Congés payés"
    assert str(chip.get_attribute("title")).endswith("› Congés payés")
    assert chip.locator(".chip-page").count() == 0  # Markdown has no pages
    shot(page, "9-source-chip-section")

    # Back on the documents page, the last search is still there; a hit opens its document.
    page.get_by_role("link", name="Documents", exact=True).click()
    page.locator(f'#passages li.hit[data-document="{guide}"] a').first.click()
    page.locator("#doc-title").wait_for()
    assert page.url.endswith(f"#/documents/{guide}")


def test_edit_title_tags_and_metadata(page: Any, server: Server) -> None:
    key = new_tenant(server, "hooli")
    doc = api_upload(
        server,
        key,
        "budget.md",
        b"# Budget\n\nThe budget for the year.\n",
        tags="draft",
        metadata='{"year": 2024, "dept": "ops", "codes": [1, 2]}',
    )
    path = f"/v1/documents/{doc['document_id']}"
    sign_in(page, key)
    page.goto(f"/#/documents/{doc['document_id']}")
    page.locator("#doc-title").wait_for()
    before = api_get(server, key, path)

    page.locator("#edit").click()
    page.locator("#edit-title").fill("Thrown away")
    page.locator("#cancel-edit").click()  # nothing is sent
    expect(page.locator("#doc-title")).to_have_text(before["title"])

    page.locator("#edit").click()
    page.locator("#edit-title").fill("Budget 2025")
    page.locator("#edit-collection").fill("finance")  # moved, not embedded again
    page.locator("#edit-tags").fill("finance, q3")
    rows = page.locator("#edit-metadata li")
    rows.filter(has=page.locator('input.meta-key[value="dept"]')).locator("input.meta-value").fill(
        "finance"
    )
    rows.filter(has=page.locator('input.meta-key[value="codes"]')).locator(".remove-field").click()
    page.locator("#add-field").click()
    rows.last.locator("input.meta-value").fill("orphan value")  # no name: refused here
    page.locator("#save").click()
    expect(page.locator("#edit-error")).to_have_text("Every field needs a name.")
    assert api_get(server, key, path)["metadata"] == before["metadata"]
    rows.last.locator("input.meta-key").fill("owner")
    rows.last.locator("input.meta-value").fill("Ana")
    page.locator("#save").click()

    expect(page.locator("#doc-title")).to_have_text("Budget 2025")
    page.locator(".toast", has_text="Changes saved.").wait_for()
    expect(page.locator("#doc-tags .tag")).to_have_text(["finance", "q3"])
    after = api_get(server, key, path)
    assert after["title"] == "Budget 2025" and after["tags"] == ["finance", "q3"]
    assert after["collection"] == "finance"
    # The year was not touched: still a number, not the text "2024".
    assert after["metadata"] == {"year": 2024, "dept": "finance", "owner": "Ana"}
    assert dict(
        zip(
            page.locator("#metadata dt.meta-key").all_inner_texts(),
            page.locator("#metadata dd.meta-value").all_inner_texts(),
            strict=True,
        )
    ) == {"year": "2024", "dept": "finance", "owner": "Ana"}
    shot(page, "10-edited")

    page.get_by_role("link", name="Documents", exact=True).click()
    page.locator("#filter-tag").fill("q3")
    expect(page.locator("#documents tr")).to_have_count(1)
    assert page.locator("#documents tr a").inner_text() == "Budget 2025"


def test_a_french_page_says_errors_sizes_and_a_failed_documents_cause_in_french(
    browser: Any, server: Server
) -> None:
    key = new_tenant(server, "soylent")
    page = new_page(browser, server, locale="fr-FR")
    try:
        sign_in(page, key)
        lines = b"# Rapport\n\n" + b"".join(
            b"Ligne %d du rapport annuel de la direction.\n" % i for i in range(1200)
        )
        report = lines[:53_964] + b"\n"  # 53,965 bytes: 52.7 KiB
        drop_files(
            page,
            ("vide.md", b"", "text/markdown"),
            ("scan.pdf", image_pdf(), "application/pdf"),
            ("rapport.md", report, "text/markdown"),
        )
        empty = upload_row(page, "vide.md")
        empty.locator('[data-status="failed"]').wait_for()
        assert empty.locator(".cause").inner_text() == "« vide.md » est vide"
        scan = upload_row(page, "scan.pdf")
        scan.locator('[data-status="failed"]').wait_for(timeout=SLOW)
        no_text = (  # a blank scan: OCR ran and found nothing
            "aucun texte extractible : la reconnaissance de caractères n’a rien trouvé de "
            "lisible sur les pages numérisées"
        )
        assert scan.locator(".cause").inner_text() == no_text
        scan_id = document_id_of(scan)
        # ... in the list of documents, and on the document (its API answers carry the cause).
        expect(page.locator(f'#documents tr[data-id="{scan_id}"] .cause')).to_have_text(no_text)
        upload_row(page, "rapport.md").locator('[data-status="ready"]').wait_for(timeout=SLOW)

        # The failed document says why on its own page.
        scan.locator("a").click()
        expect(page.locator("#doc-error")).to_have_text(f"L’indexation a échoué : {no_text}")
        shot(page, "11-failed-cause-fr")

        page.go_back()
        upload_row(page, "rapport.md").locator("a").click()
        size = page.locator('#versions tr[data-version="1"] td').nth(2)
        expect(size).to_have_text("52,7\u00a0Ko")
        # A refused edit: the server's reason, in French.
        page.locator("#edit").click()
        page.locator("#edit-tags").fill("x" * 101)
        page.locator("#save").click()
        expect(page.locator("#edit-error")).to_have_text(
            f"l’étiquette « {'x' * 40} » est invalide (1 à 100 caractères imprimables)"
        )
        page.locator("#edit-tags").fill("")
        page.locator("#edit-title").fill("")
        page.locator("#edit-title").evaluate("(input) => input.removeAttribute('required')")
        page.locator("#save").click()
        expect(page.locator("#edit-error")).to_have_text("Titre : ne doit pas être vide")
        shot(page, "12-refused-edit-fr")
        assert page.js_errors == []
    finally:
        page.context.close()


def caught(call: Callable[[], Any]) -> GedragError:
    with pytest.raises(GedragError) as info:
        call()
    return info.value


def test_the_server_messages_a_user_meets_read_in_french(browser: Any, server: Server) -> None:
    """The console's table of server texts against the texts the server really writes: a
    changed message on the server fails here instead of showing English on a French page."""
    tenant = server.catalog.tenants.create("wonka")
    server.catalog.collections.create(tenant.id, "twice")
    limits = ParseLimits(max_chars=10)
    limit = {"max_bytes": 1024}
    said_by_server = {
        "« vide.md » est vide": caught(
            lambda: check_file(io.BytesIO(b""), "vide.md", max_bytes=100)
        ),
        "« gros.pdf » dépasse la taille maximale de 1\u00a0Ko": caught(
            lambda: check_file(io.BytesIO(b"x" * 2048), "gros.pdf", max_bytes=1024)
        ),
        "« anim.gif » est une image GIF : gedrag lit les numérisations et photos de pages en "
        "PNG, JPEG, TIFF, WebP ou HEIC": caught(
            lambda: check_file(io.BytesIO(b"GIF89a" + bytes(64)), "anim.gif", **limit)
        ),
        "« a.jpg » porte le nom d’une image, d’un son, d’une vidéo, d’une archive ou d’un "
        "programme (.jpg) et ne contient aucun document pris en charge": caught(
            lambda: check_file(io.BytesIO(b"x"), "a.jpg", **limit)
        ),
        "« a.gz » est une archive gzip, pas un document": caught(
            lambda: check_file(io.BytesIO(b"\x1f\x8b\x08\x00" + bytes(64)), "a.gz", **limit)
        ),
        "« a.docx » porte le nom d’un fichier Word (DOCX) mais n’en est pas un": caught(
            lambda: check_file(io.BytesIO(b"hello"), "a.docx", **limit)
        ),
        f"l’étiquette « {'x' * 40} » est invalide (1 à 100 caractères imprimables)": caught(
            lambda: parse_tags(["x" * 101])
        ),
        "au plus 50 étiquettes par document": caught(
            lambda: parse_tags([",".join(f"t{i}" for i in range(51))])
        ),
        "fichier PDF vide": caught(
            lambda: parse(b"", media_type="application/pdf", filename="a.pdf")
        ),
        "PDF corrompu ou illisible (no %PDF header)": caught(
            lambda: parse(b"hello", media_type="application/pdf", filename="a.pdf")
        ),
        "aucun texte extractible (un document numérisé ? la reconnaissance de caractères "
        "n’est pas activée)": caught(
            lambda: parse(
                image_pdf(),
                media_type="application/pdf",
                filename="a.pdf",
                limits=ParseLimits(ocr=None),
            )
        ),
        "aucun texte extractible : la reconnaissance de caractères n’a rien trouvé de lisible "
        "sur les pages numérisées": caught(
            lambda: parse(image_pdf(), media_type="application/pdf", filename="a.pdf")
        ),
        "cette image (PNG image) ne peut être lue que par la reconnaissance de caractères, qui "
        "est désactivée": caught(
            lambda: parse(
                b"\x89PNG\r\n\x1a\n" + bytes(64),
                media_type="image/png",
                filename="a.png",
                limits=ParseLimits(ocr=None),
            )
        ),
        "trop volumineux : 400 caractères (maximum 10)": caught(
            lambda: parse(b"mot " * 100, media_type="text/plain", filename="a", limits=limits)
        ),
        "clé inconnue ou révoquée": caught(
            lambda: server.catalog.tenants.authenticate("gdr_no-such-key")
        ),
        "la collection « twice » existe déjà": caught(
            lambda: server.catalog.collections.create(tenant.id, "twice")
        ),
        "ce document n’existe pas (ou a été supprimé)": caught(
            lambda: server.catalog.documents.get(tenant.id, "no-such-document")
        ),
    }
    errors = [
        {"status": status_for(e), "code": e.code, "detail": e.detail}
        for e in said_by_server.values()
    ]
    # ... and texts no pattern knows: a translated reason, then the server's words.
    errors += [
        {"status": 503, "code": "store_unavailable", "detail": "job queue unavailable: boom"},
        {"status": 0, "code": "network", "detail": "network"},
        {"status": 502, "code": None, "detail": "HTTP 502"},
    ]
    expected = [
        *said_by_server,
        "un service de stockage est indisponible ; réessayez dans quelques secondes : "
        "job queue unavailable: boom",
        "le serveur ne répond pas",
        "erreur HTTP 502 : HTTP 502",
    ]
    page = new_page(browser, server, locale="fr-FR")
    try:
        page.goto("/")
        page.locator("#login").wait_for()
        said = page.evaluate(
            """async ({ errors, retrying }) => {
                const { describe, describeCause } = await import("/console/errors.js");
                return [...errors.map((e) => describe(e)), describeCause(retrying)];
            }""",
            # a job's cause while it waits for another try (ingestion.service)
            {"errors": errors, "retrying": "retrying after: empty PDF file"},
        )
    finally:
        page.context.close()
    expected.append("nouvel essai après : fichier PDF vide")
    assert said == expected


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


def test_releases_over_the_real_evaluation_harness(
    page: Any, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no release yet, the page explains how to run a first evaluation and runs it; then
    two releases scored on the tiny suite by the real harness are shown, reported and put
    through the real gate from the page (a key of the `default` tenant, the default promoter)."""
    ship_suites(tmp_path / "suites", monkeypatch)  # tiny (its data here) and absent (none)
    server.catalog.tenants.create("default")
    promoter, _ = server.catalog.tenants.create_key("default")
    sign_in(page, promoter)
    page.goto("/#/releases")
    assert "No releases yet" in page.locator("#releases-state").inner_text()
    first = page.locator("#run-evaluation")
    assert first.locator("h2").inner_text() == "Run a first evaluation"
    assert "your documents are neither read nor changed" in first.locator(".why").inner_text()
    command = first.locator("pre.command").inner_text()
    assert command == "gedrag eval run --release default --suite tiny"
    options = first.locator("#run-suite option")
    expect(options).to_have_text(["absent (data not on this server)", "tiny"])
    assert options.first.is_disabled()
    shot(page, "6-first-evaluation")
    page.evaluate(
        """() => {
            window.states = [];
            new MutationObserver(() => {
                const text = document.querySelector("#run-state")?.textContent;
                if (text && window.states.at(-1) !== text) window.states.push(text);
            }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )
    first.locator("#run-start").click()  # "default" and "tiny" are preselected

    store = EvalStore(server.catalog)
    default = load_release(RELEASES_DIR / "default.yaml")
    card = page.locator(f'#candidates article[data-id="{default.id}"]')
    card.wait_for(timeout=SLOW)  # the page shows the new scores when the run ends
    states = page.evaluate("() => window.states")
    assert states[0].startswith("Evaluation running…"), states
    # its progress, stage by stage ("indexing: 8 of 8", "answering the questions: 3 of 9")
    assert any(re.fullmatch(r"Evaluation running… [a-z ]+: \d+ of \d+", s) for s in states)
    runs = store.runs(default.id)
    assert len(runs) == 1 and runs[0].suite == "tiny"
    assert card.locator('[data-metric="recall@k"]').inner_text() == "1.000"
    assert page.locator("#run-evaluation h2").inner_text() == "Run an evaluation"

    suite = load_suite(str(FIXTURES / "eval_suite" / "suite.yaml"))
    worse = load_release(RELEASES_DIR / "dense-top1.yaml")
    # In a thread: ragas runs its own event loop, and Playwright's holds this thread's.
    with ThreadPoolExecutor(1) as pool:
        scored = {
            default.id: runs[0],
            worse.id: pool.submit(runner.run, server.settings, worse, suite, store).result(),
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


def test_releases_show_scores_report_and_the_gate_verdict(
    page: Any, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the routes' contract, served by the browser's request interception."""
    ship_suites(tmp_path / "suites", monkeypatch)
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

    # acme is no promoter: the real server refuses to start an evaluation, and the page says
    # why in its language.
    page.locator("#run-start").click()
    refused = page.locator("#run-state .error")
    refused.wait_for()
    assert refused.inner_text() == (
        "Not allowed: this key's tenant “acme” may not do this "
        "(GEDRAG_EVALUATION__PROMOTERS names those that may)"
    )

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

    # The language switch draws the page again (the reload the promotion scheduled is dropped).
    page.locator("#lang").select_option("fr")
    page.locator("#run-title", has_text="Lancer une évaluation").wait_for()  # drawn again
    candidate = page.locator('#candidates article[data-id="rel-b"]')
    expect(candidate.locator('[data-metric="faithfulness"]')).to_have_text("0,740")
    page.locator("#run-start").click()
    expect(page.locator("#run-state .error")).to_have_text(
        "Non autorisé : le tenant de cette clé, « acme », n’y est pas autorisé "
        "(GEDRAG_EVALUATION__PROMOTERS nomme ceux qui le sont)"
    )


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
        # the server's reason, in French too
        assert (
            page.locator("#login .error").inner_text() == "Clé refusée : clé inconnue ou révoquée"
        )

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
    for _ in range(20):  # the skip link, each page of the menu, then the page
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


def test_signing_in_with_a_password_and_coming_back_from_single_sign_on(
    page: Any, server: Server
) -> None:
    """Issue #19 in the console: a user signs in with a name and password (a session), a wrong
    password is said on the form, and the single sign-on callback's /#sso=<token> opens the
    console (the token leaves the address) while /#sso-error= shows its cause."""
    catalog = server.catalog
    tenant = catalog.tenants.get("acme")
    user = catalog.people.create_user(
        tenant.id, "nadia", roles=[Role.READER], password="nadia-secret-pw"
    )
    page.goto("/")
    page.locator("#login-user").wait_for()
    shot(page, "8-sign-in-forms")
    page.locator("#login-user").fill("nadia")
    page.locator("#login-tenant").fill("acme")
    page.locator("#login-password").fill("wrong-password!")
    page.locator("#account-login button[type=submit]").click()
    page.locator("#account-login .error", has_text="Sign-in refused").wait_for()
    page.locator("#login-password").fill("nadia-secret-pw")
    page.locator("#account-login button[type=submit]").click()
    page.locator("#dropzone").wait_for()
    assert page.evaluate("sessionStorage.getItem('gedrag.apiKey')").startswith("gds_")
    page.get_by_role("button", name="Sign out").click()
    page.locator("#login h1", has_text="Sign in").wait_for()

    token, _ = catalog.people.create_session(
        user, method="sso", source="test", ttl=timedelta(hours=1)
    )
    page.goto(f"/#sso={token}")
    page.locator("#dropzone").wait_for()
    assert "sso=" not in page.url and token not in page.url
    assert page.evaluate("sessionStorage.getItem('gedrag.apiKey')") == token
    page.get_by_role("button", name="Sign out").click()
    page.goto("/#sso-error=the%20provider%20refused%20the%20sign-in")
    page.locator("#login .error", has_text="the provider refused the sign-in").wait_for()
    assert page.locator("#sso").count() == 0  # no provider configured: no single sign-on button


def test_a_scan_shows_its_pages_opens_a_citation_on_its_page_and_downloads_searchable(
    page: Any, server: Server
) -> None:
    """Issue #16: a two-page TIFF scan shows its pages as thumbnails; one opens beside them; a
    cited passage's link opens the document on the cited page; the scan downloads as a PDF with
    its text layer; a text document shows no pages."""
    key = new_tenant(server, "scans-console")
    scan = FIXTURES / "scans" / "gd-0224-scan.tif"
    doc_id = api_upload(server, key, scan.name, scan.read_bytes())["document_id"]
    note_id = api_upload(server, key, "note.md", b"# Note\n\nNo pages here at all.\n")[
        "document_id"
    ]
    sign_in(page, key)

    page.goto(f"/#/documents/{doc_id}")
    page.locator("#doc-title").wait_for()
    thumbs = page.locator("#thumbs li")
    expect(thumbs).to_have_count(2)
    expect(page.locator("#thumbs img")).to_have_count(2)  # both pictures arrived
    expect(page.locator("#page-view figcaption")).to_have_text("Page 1")
    thumbs.nth(1).locator("button").click()
    expect(page.locator("#page-view figcaption")).to_have_text("Page 2")
    assert page.locator("#page-view img").evaluate("img => img.naturalWidth") == 1240
    expect(thumbs.nth(1)).to_have_attribute("aria-current", "")
    shot(page, "pages-1-scan")

    with page.expect_download() as download:
        page.locator("#download-searchable").click()
    assert download.value.suggested_filename == "gd-0224-scan.searchable.pdf"
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")

    page.get_by_role("link", name="Ask").click()
    page.locator("#question").fill("Le Prestataire et le Client signent page 2 ?")
    page.locator("#question").press("Enter")
    answer = page.locator(".turn .answer").last
    chip = answer.locator("button.citation").first
    chip.wait_for(timeout=SLOW)
    cited_page = chip.locator(".chip-page").inner_text().removeprefix("p. ")
    chip.click()
    link = page.locator("#passage-document")
    assert link.get_attribute("href") == f"#/documents/{doc_id}/pages/{cited_page}"
    link.click()
    expect(page.locator("#page-view figcaption")).to_have_text(f"Page {cited_page}")
    shot(page, "pages-2-cited-page")

    page.goto(f"/#/documents/{note_id}")
    expect(page.locator("#thumbs")).to_have_count(0)  # the note's own view, not the scan's
    page.locator('#versions tr[data-version="1"]').wait_for()
    expect(page.locator("#pages")).to_be_hidden()


def test_an_administrator_manages_people_groups_access_and_reads_the_audit_trail(
    page: Any, server: Server
) -> None:
    """Issue #19 in the console: an administrator adds an HR user and a Legal user, an HR
    group with its member, restricts the payslips collection to HR, and reads, verifies and
    exports the audit trail; the Legal user, signed in with a password, sees no payslip and no
    People page; a document's own access panel grants the memo to HR only."""
    key = new_tenant(server, "people-console")
    payslip = api_upload(
        server,
        key,
        "payslip.md",
        b"# Payslip\n\nMarie Curie is paid 4,200 EUR net.\n",
        collection="payslips",
    )["document_id"]
    memo = api_upload(server, key, "memo.md", b"# Memo\n\nThe Lyon office moves in June.\n")[
        "document_id"
    ]
    sign_in(page, key)
    people = page.locator("#nav-people")
    expect(people).to_be_visible()
    people.click()
    for name, role in (("hr-anna", "reader"), ("legal-ben", "reader")):
        page.locator("#new-username").fill(name)
        page.locator("#new-password").fill(f"{name}-secret-pw")
        page.locator("#new-role").select_option(role)
        page.locator("#new-user button[type=submit]").click()
        page.locator(f'#users tr[data-user="{name}"]').wait_for()
    page.locator("#new-group-name").fill("HR")
    page.locator("#new-group button[type=submit]").click()
    group = page.locator('#groups tr[data-group="HR"]')
    group.locator("button[data-action=members]").click()
    page.locator(".members-form label", has_text="hr-anna").locator("input").check()
    page.locator(".members-form button[type=submit]").click()
    expect(page.locator('#groups tr[data-group="HR"] .members')).to_have_text("hr-anna")

    page.locator("#access-collection").select_option("payslips")
    editor = page.locator("#collection-access")
    editor.locator(".add-entry").click()
    editor.locator(".principal").last.select_option(label="Group HR")
    editor.locator("button[type=submit]").click()
    page.locator("#toast", has_text="Access list saved").wait_for()
    shot(page, "people-1-access")

    page.locator("#audit-action").fill("access.*")
    page.locator("#audit-filter button[type=submit]").click()
    expect(page.locator('#audit tr[data-action="access.change"]')).to_have_count(1)
    page.locator("#verify-audit").click()
    expect(page.locator("#audit-verify")).to_contain_text("Chain intact")
    with page.expect_download() as download:
        page.locator("button[data-export=csv]").click()
    assert "access.change" in Path(download.value.path()).read_text()

    page.goto(f"/#/documents/{memo}")
    panel = page.locator("#document-access")
    expect(panel).to_be_visible()
    panel.locator(".add-entry").click()
    panel.locator(".principal").last.select_option(label="Group HR")
    panel.locator("#access-inherit").uncheck()
    panel.locator("button[type=submit]").click()
    expect(page.locator("#effective-access")).to_contain_text("Group HR")
    shot(page, "people-2-document-access")

    page.get_by_role("button", name="Sign out").click()
    page.locator("#login-user").fill("legal-ben")
    page.locator("#login-tenant").fill("people-console")
    page.locator("#login-password").fill("legal-ben-secret-pw")
    page.locator("#account-login button[type=submit]").click()
    page.locator("#dropzone").wait_for()
    page.locator(".empty", has_text="No document").wait_for()  # neither the payslip nor the memo
    expect(page.locator(f'#documents tr[data-id="{payslip}"]')).to_have_count(0)
    expect(page.locator("#nav-people")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()
