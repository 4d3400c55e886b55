"""A LangChain ``BaseRetriever`` over a running gedrag API, for users who build on LangChain.

    from retrieval.langchain import GedragRetriever
    retriever = GedragRetriever(url="http://127.0.0.1:8000", api_key="gdr_...", collections=["hr"])
    docs = retriever.invoke("How many days of leave?")

Each passage becomes a ``Document`` whose metadata carries what a citation needs (document id,
title, version, page, chunk id, score). ``url`` is the server's address, with or without the
API's ``/v1`` (``http://host:8000`` and ``http://host:8000/v1/`` are the same). Install with
``pip install gedrag[langchain]``.
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, SecretStr, field_validator

API_PREFIX = "/v1"


class GedragRetriever(BaseRetriever):
    """Calls ``POST /v1/search`` with the caller's key; tenant isolation is the API's."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str = "http://127.0.0.1:8000"
    api_key: SecretStr
    collections: list[str] | None = None
    tags: list[str] | None = None
    top_k: int = 8
    timeout_s: float = 30.0
    transport: httpx.BaseTransport | None = None

    @field_validator("url")
    @classmethod
    def _server_root(cls, url: str) -> str:
        """The server's root: what users copy is often the API's base, ``.../v1``."""
        root = url.strip().rstrip("/")
        return root.removesuffix(API_PREFIX) if root.endswith(API_PREFIX) else root

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        body: dict[str, Any] = {"query": query, "top_k": self.top_k}
        if self.collections:
            body["collections"] = self.collections
        if self.tags:
            body["tags"] = self.tags
        with httpx.Client(
            base_url=self.url, timeout=self.timeout_s, transport=self.transport
        ) as client:
            response = client.post(
                f"{API_PREFIX}/search",
                json=body,
                headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
            )
        response.raise_for_status()
        return [
            Document(
                page_content=p["text"],
                metadata={k: v for k, v in p.items() if k != "text"},
            )
            for p in response.json()["passages"]
        ]
