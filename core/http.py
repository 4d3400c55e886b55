"""The HTTP client of an OpenAI-compatible endpoint (vLLM), shared by every caller of one."""

from __future__ import annotations

import httpx


def openai_client(
    base_url: str,
    api_key: str | None,
    timeout_s: float,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A client on ``base_url`` (e.g. ``http://vllm:8000/v1``) sending the bearer key, if any."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(
        base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
    )
