"""Answers from an OpenAI-compatible ``/chat/completions`` endpoint: the vLLM server in production.

Failures are sorted at this boundary so nothing httpx-specific leaks upward:

* connect errors, timeouts, dropped connections, 408, 429 and 5xx are transient: retried
  ``max_retries`` times with a short exponential backoff, then :class:`StoreUnavailable`;
* any other 4xx (unknown model, prompt longer than the server's ``--max-model-len``, bad
  parameters) is a configuration problem, never retried: :class:`ConfigurationError`.

The model's text is never trusted: :func:`retrieval.citations.grounded_answer` (``to_answer``
here) drops markers naming no passage sent, removes control characters, turns an empty reply or
one containing :data:`NOT_FOUND_MARKER` into the localised not-found answer, and keeps text
citing no passage with ``grounded=False``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from core.errors import ConfigurationError, StoreUnavailable
from core.http import openai_client
from core.metrics import TOKENS
from retrieval.citations import grounded_answer as to_answer
from retrieval.citations import not_found
from retrieval.prompt import NOT_FOUND_MARKER, SYSTEM_PROMPT, build_messages
from retrieval.types import Answer, Message, Passage

log = logging.getLogger(__name__)

# Cheap token estimate: ~4 characters per token for English with GPT-style BPE vocabularies
# (French runs nearer 3), plus a few tokens of chat-template framing per message. It only
# decides which passages to send; leave the server's --max-model-len a margin above
# context_token_budget + max_tokens for the estimate's error.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
_TRANSIENT_STATUS = frozenset({408, 429})
# Transport failures worth another attempt; UnsupportedProtocol, ProxyError... are not.
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes, estimated from its length (no tokenizer needed)."""
    return len(text) // CHARS_PER_TOKEN + 1


def prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) + TOKENS_PER_MESSAGE for m in messages)


class _TransientStatus(Exception):
    """An HTTP status worth retrying; turned into StoreUnavailable once retries are spent."""


class VLLMGenerator:
    """A :class:`retrieval.generation.Generator` backed by a vLLM (or any OpenAI-compatible)
    chat endpoint at ``base_url`` (e.g. ``http://vllm:8000/v1``) serving ``model``.

    ``timeout_s`` applies per attempt to connecting and to each read: for ``generate`` the whole
    reply must arrive within it (vLLM sends nothing before it is done), for ``stream`` it bounds
    the gap between two deltas. A call therefore fails within about
    ``(max_retries + 1) * timeout_s`` plus the backoff (``backoff_s``, doubled each retry).
    ``max_tokens`` caps the answer; ``context_token_budget`` caps the prompt (system prompt,
    history, passages, question, estimated by :func:`estimate_tokens`): passages are dropped
    from the end, the least relevant first, until it fits.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        max_tokens: int = 512,
        context_token_budget: int = 3000,
        temperature: float = 0.0,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_retries < 0 or max_tokens < 1 or context_token_budget < 1:
            raise ConfigurationError(
                "max_retries must be >= 0, max_tokens and context_token_budget >= 1"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.context_token_budget = context_token_budget
        self.temperature = temperature
        self.backoff_s = backoff_s
        self.client = openai_client(self.base_url, api_key, timeout_s, transport)

    @property
    def name(self) -> str:
        return "vllm"

    def to_dict(self) -> dict[str, Any]:
        """What shapes the answers (part of a release id); timeouts and retries do not."""
        return {
            "name": self.name,
            "model": self.model,
            "base_url": self.base_url,
            "max_tokens": self.max_tokens,
            "context_token_budget": self.context_token_budget,
            "temperature": self.temperature,
            "prompt": SYSTEM_PROMPT.format(not_found=NOT_FOUND_MARKER),
        }

    def close(self) -> None:
        self.client.close()

    def fit(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> list[Passage]:
        """The leading ``passages`` whose prompt fits ``context_token_budget``."""
        kept = list(passages)
        while kept and prompt_tokens(build_messages(question, kept, history)) > (
            self.context_token_budget
        ):
            kept.pop()
        if len(kept) < len(passages):
            log.info(
                "passages dropped to fit the context budget",
                extra={
                    "model": self.model,
                    "kept": len(kept),
                    "dropped": len(passages) - len(kept),
                    "budget": self.context_token_budget,
                },
            )
        return kept

    def generate(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Answer:
        sent = self.fit(question, passages, history)
        if not sent:
            return not_found(question)
        response = self._post(self._body(question, sent, history, stream=False))
        text, finish = _reply(response)
        TOKENS.labels(self.name).inc(_completion_tokens(response))
        if finish == "length":
            log.info(
                "answer cut at max_tokens",
                extra={"model": self.model, "max_tokens": self.max_tokens},
            )
        answer = to_answer(text, question, sent)
        if not answer.citations and NOT_FOUND_MARKER not in text:
            log.warning(
                "model reply cites no passage",
                extra={"model": self.model, "chars": len(text)},
            )
        return answer

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Iterator[str]:
        """Text deltas as the model writes them. A reply starting with the not-found marker is
        replaced by the localised not-found text (the first few characters are held back until
        that is decided); join the deltas and pass them to :func:`to_answer` with
        :meth:`fit`'s passages for the validated answer."""
        sent = self.fit(question, passages, history)
        if not sent:
            yield not_found(question).text
            return
        held = ""
        deciding = True
        for delta in self._deltas(self._body(question, sent, history, stream=True)):
            if not deciding:
                yield delta
                continue
            held += delta
            head = held.lstrip()
            if head.startswith(NOT_FOUND_MARKER):
                yield not_found(question).text
                return  # closing the generator closes the response: generation stops
            if len(head) >= len(NOT_FOUND_MARKER) or not NOT_FOUND_MARKER.startswith(head):
                deciding = False
                yield held
        if deciding and held:
            yield held

    def _body(
        self,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[Message],
        *,
        stream: bool,
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": build_messages(question, passages, history),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }

    def _pause(self, attempt: int, cause: str) -> None:
        delay = self.backoff_s * 2**attempt
        log.warning(
            "LLM call failed, retrying",
            extra={"model": self.model, "attempt": attempt + 1, "delay_s": delay, "cause": cause},
        )
        time.sleep(delay)

    def _unavailable(self, cause: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"LLM at {self.base_url} unavailable after {self.max_retries + 1} attempts: {cause}"
        )

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._pause(attempt - 1, cause)
            try:
                response = self.client.post("/chat/completions", json=body)
                self._check(response)
                return response
            except _TRANSIENT_ERRORS as exc:
                cause = f"{type(exc).__name__}: {exc}"
            except _TransientStatus as exc:
                cause = str(exc)
        raise self._unavailable(cause)

    def _deltas(self, body: dict[str, Any]) -> Iterator[str]:
        """Raw content deltas; retried until the first one arrives, then best effort."""
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._pause(attempt - 1, cause)
            chars = 0
            try:
                with self.client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        response.read()
                    self._check(response)
                    for delta in _sse_deltas(response.iter_lines()):
                        chars += len(delta)
                        # vLLM streams one event per generated token.
                        TOKENS.labels(self.name).inc()
                        yield delta
                return
            except _TRANSIENT_ERRORS as exc:
                if chars:
                    log.warning(
                        "LLM stream interrupted, keeping the text so far",
                        extra={"model": self.model, "chars": chars, "error": repr(exc)},
                    )
                    return
                cause = f"{type(exc).__name__}: {exc}"
            except _TransientStatus as exc:
                cause = str(exc)
        raise self._unavailable(cause)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        detail = _error_detail(response)
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise _TransientStatus(f"HTTP {status}: {detail}")
        raise ConfigurationError(
            f"LLM at {self.base_url} refused the request for model {self.model!r} "
            f"(HTTP {status}): {detail}"
        )


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:300]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return response.text[:300]


def _reply(response: httpx.Response) -> tuple[str, str | None]:
    """The reply's text ("" when missing or not text) and its finish reason."""
    try:
        choice = response.json()["choices"][0]
        content = choice["message"].get("content")
        finish = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        log.warning("LLM reply not in chat-completion shape", extra={"body": response.text[:200]})
        return "", None
    return (content if isinstance(content, str) else ""), (
        finish if isinstance(finish, str) else None
    )


def _completion_tokens(response: httpx.Response) -> int:
    """``usage.completion_tokens`` of a reply; 0 when the server did not report it."""
    try:
        n = response.json()["usage"]["completion_tokens"]
    except (ValueError, KeyError, TypeError):
        return 0
    return n if isinstance(n, int) else 0


def _sse_deltas(lines: Iterator[str]) -> Iterator[str]:
    """``choices[0].delta.content`` of each server-sent event up to ``data: [DONE]``; events
    without text (the role header, usage, keep-alive comments) are skipped, an error event ends
    the stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("LLM stream event is not JSON, skipped", extra={"event": data[:200]})
            continue
        if not isinstance(event, dict):
            continue
        if "error" in event:
            log.warning("LLM stream ended with an error", extra={"error": str(event["error"])})
            return
        try:
            content = event["choices"][0]["delta"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
        if isinstance(content, str) and content:
            yield content
