"""The console's Traces page and the thumbs under each answer, in a real browser (Chromium,
headless, Playwright) against the app served for real: an answer is rated down with a reason
and the right answer from the Ask page, the rating reaches its trace, the Traces page lists and
opens it (passages with their per-stage scores) and replays it, and a drift report is made and
shown with its plots."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_console import SLOW, Server, browser, page, server, shot, sign_in
from tests.e2e.test_records_console import uploaded

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
__all__ = ["browser", "page", "server"]  # the fixtures, shared with the console's tests


def test_rate_an_answer_then_find_open_and_replay_its_trace(page: Any, server: Server) -> None:
    key = server.keys["initech"]
    uploaded(server, key)
    sign_in(page, key)
    page.get_by_role("link", name="Ask").click()
    page.locator("#question").fill("Who delivered the toner to the Lyon office?")
    page.locator("#question").press("Enter")
    answer = page.locator(".turn .answer").last
    answer.locator(".feedback").wait_for(timeout=SLOW)
    answer.locator('button[data-rating="down"]').click()
    answer.locator(".feedback input").fill("names the company, not the person")
    answer.locator(".feedback textarea").fill("Jean Dupont, from Globex.")
    answer.locator('button[data-rating="send"]').click()
    answer.locator(".feedback", has_text="Thank you").wait_for()
    shot(page, "traces-1-rated")

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        rated = c.get("/v1/traces", params={"feedback": "down"}).json()["items"]
        assert len(rated) == 1 and rated[0]["question"].startswith("Who delivered the toner")
        trace = c.get(f"/v1/traces/{rated[0]['id']}").json()
    assert trace["feedback"]["reason"] == "names the company, not the person"
    assert trace["feedback"]["corrected_answer"] == "Jean Dupont, from Globex."

    page.get_by_role("link", name="Traces").click()
    row = page.locator("#trace-rows tr", has_text="Who delivered the toner")
    row.wait_for()
    assert "not helpful" in row.inner_text()
    row.locator("button").click()
    dialog = page.locator("dialog#trace")
    dialog.locator("#trace-passages tbody tr").first.wait_for()
    headers = dialog.locator("#trace-passages th").all_inner_texts()
    assert {"dense", "sparse"} <= set(headers)
    assert "Rated: not helpful" in dialog.inner_text()
    dialog.locator("#trace-replay").click()
    dialog.locator(".replay", has_text="the same passages and the same answer").wait_for(
        timeout=SLOW
    )
    shot(page, "traces-2-trace")
    page.keyboard.press("Escape")

    page.locator("#drift-make").click()
    frame = page.locator("#drift-report iframe.report-frame")
    frame.wait_for(timeout=SLOW)
    assert "Drift report" in str(frame.get_attribute("srcdoc"))
    assert "not enough data" in str(frame.get_attribute("srcdoc"))  # one question so far
    shot(page, "traces-3-drift")
