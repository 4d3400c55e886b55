"""The console's Records page in a real browser (Chromium, headless, Playwright), against the
app served for real: a document deleted from its page waits in the trash and is restored, a
legal hold and a retention policy are added from the forms, a subject-access request lists the
document, a purge from the trash writes a certificate; a key that is no administrator sees no
purge button."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.test_console import SLOW, Server, browser, page, server, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
__all__ = ["browser", "page", "server"]  # the fixtures, shared with the console's tests

NOTE = b"# Supplier note\n\nJean Dupont from Globex delivered the toner to the Lyon office.\n"


def uploaded(server: Server, key: str) -> str:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.post("/v1/documents", files={"file": ("note.md", NOTE)}, data={"collection": "rec"})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + SLOW / 1000
        while c.get(f"/v1/jobs/{r.json()['job_id']}").json()["state"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        doc_id: str = r.json()["document_id"]
        return doc_id


def test_records_page_trash_restore_hold_policy_subject_and_purge(
    page: Any, server: Server
) -> None:
    key = server.keys["globex"]
    doc = uploaded(server, key)
    sign_in(page, key)
    page.goto(f"/#/documents/{doc}")
    page.locator("#delete").click()
    page.locator("#confirm-delete-button").click()
    page.wait_for_url("**/#/documents")

    page.goto("/#/records")
    row = page.locator(f'#trash-list tr[data-document="{doc}"]')
    row.wait_for()
    assert page.locator("#not-admin").count() == 0
    shot(page, "records-1-trash")
    row.locator("button.restore").click()
    page.locator("#trash .empty").wait_for()

    page.locator("#hold-name").fill("Globex audit")
    page.locator("#hold-reason").fill("case 17")
    page.locator("#hold-kind").select_option("collection")
    page.locator("#hold-value").fill("rec")
    page.locator("#hold-form button[type=submit]").click()
    page.locator("#hold-list tr", has_text="Globex audit").wait_for()

    page.locator("#policy-name").fill("CVs 2 years")
    page.locator("#policy-kind").select_option("type")
    page.locator("#policy-value").fill("cv")
    page.locator("#policy-years").fill("2")
    page.locator("#policy-anchor").select_option("upload")
    page.locator("#policy-form button[type=submit]").click()
    page.locator("#policy-list tr", has_text="CVs 2 years").wait_for()

    page.locator("#subject-terms").fill("Jean Dupont")
    page.locator("#subject-form button[type=submit]").click()
    page.locator(f'#subject-list tr[data-document="{doc}"]').wait_for()
    shot(page, "records-2-hold-policy-subject")

    # The hold refuses the delete, naming itself; released, the purge goes through.
    page.goto(f"/#/documents/{doc}")
    page.locator("#delete").click()
    page.locator("#confirm-delete-button").click()
    page.locator(".toast.error", has_text="Globex audit").wait_for()
    page.goto("/#/records")
    page.locator("#hold-list button.release").click()
    page.locator("#holds .empty").wait_for()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.delete(f"/v1/documents/{doc}").status_code == 200
    page.reload()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'#trash-list tr[data-document="{doc}"] button.purge').click()
    page.locator("#certificate-list tr").first.wait_for(timeout=SLOW)
    shot(page, "records-3-certificate")


def test_a_key_that_is_no_administrator_sees_no_purge(page: Any, server: Server) -> None:
    intern, _ = server.catalog.tenants.create_key("initech", "intern")
    doc = uploaded(server, intern)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {intern}"}) as c:
        assert c.delete(f"/v1/documents/{doc}").status_code == 200
    sign_in(page, intern)
    page.goto("/#/records")
    page.locator("#not-admin").wait_for()
    row = page.locator(f'#trash-list tr[data-document="{doc}"]')
    row.wait_for()
    assert row.locator("button.purge").count() == 0 and row.locator("button.restore").count() == 1
    assert page.locator("#policy-form").count() == 0
