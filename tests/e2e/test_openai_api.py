"""OpenAI compatibility as OpenAI's own Python SDK sees it: the models a key can use, real
token counts, and an unknown model refused with 404 like OpenAI instead of served silently."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest

from evaluation import service as evals
from evaluation.release import load_release
from stores.catalog.evaluation import EvalStore
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

MEMO = b"# Budget memo\n\nThe budget for 2025 is 12,500 EUR, approved by the board in March.\n"
QUESTION = "What is the budget for 2025?"


def sdk(api: Api, tenant: str = "acme") -> openai.OpenAI:
    # The app's test client is an httpx.Client: the SDK sends its requests through it.
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=api.keys[tenant], http_client=api.client
    )


def test_models_usage_and_unknown_models(make_api: Callable[..., Api]) -> None:
    api = make_api(None)
    up = api.upload("memo.md", MEMO, collection="finance").json()
    api.wait(up["job_id"])
    api.wait(
        api.upload(
            "other.md", b"# Other\n\nNothing here.", tenant="globex", collection="secret"
        ).json()["job_id"],
        tenant="globex",
    )
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    release = evals.register(EvalStore(rt.catalog), load_release("default"))

    client = sdk(api)
    ids = [m.id for m in client.models.list()]
    assert ids == ["gedrag", "gedrag/finance", f"gedrag@{release.id}"]
    assert "gedrag/secret" not in ids  # another tenant's collection

    reply = client.chat.completions.create(
        model="gedrag/finance", messages=[{"role": "user", "content": QUESTION}]
    )
    assert "12,500 EUR" in (reply.choices[0].message.content or "")
    usage = reply.usage
    assert usage is not None
    count = rt.models.embedder.count_tokens
    assert usage.prompt_tokens == count(QUESTION) > 0  # was 0
    assert usage.completion_tokens == count(reply.choices[0].message.content or "") > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    by_release = client.chat.completions.create(
        model=f"gedrag@{release.name}/finance", messages=[{"role": "user", "content": QUESTION}]
    )
    assert "12,500 EUR" in (by_release.choices[0].message.content or "")

    chunks = list(
        client.chat.completions.create(
            model="gedrag",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "12,500 EUR" in text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == usage.prompt_tokens

    for model in ("gpt-4o", "gedrag/secret", "gedrag/nope", "gedrag@rel_unknown", "gedragx"):
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.code == "model_not_found", model
        body = err.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert body["param"] == "model" and model in body["message"]
    with pytest.raises(openai.AuthenticationError) as denied:
        openai.OpenAI(
            base_url="http://testserver/v1", api_key="gdr_wrong", http_client=api.client
        ).models.list()
    assert denied.value.code == "invalid_api_key"
    raw = api.client.post(
        "/v1/chat/completions", headers=api.h(), json={"model": "x", "messages": []}
    )
    assert raw.status_code == 422 and json.loads(raw.text)["error"]["param"] == "messages"
