"""Answer generation behind a small Protocol, with two real implementations side by side:

* :class:`retrieval.extractive.ExtractiveGenerator` — the embedded default, no model weights:
  picks and stitches the passages' most relevant sentences, cites each, and says plainly that
  the documents do not answer when the evidence is weak.
* :class:`retrieval.vllm.VLLMGenerator` — an OpenAI-compatible chat endpoint (the vLLM server of
  production), streaming, with timeouts, retries on transient errors and a context token budget.

Whatever writes the text, :func:`retrieval.citations.validate` checks it afterwards: an answer
never cites a passage that was not retrieved.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from retrieval.types import Answer, Message, Passage


class Generator(Protocol):
    """Writes a grounded answer to ``question`` from ``passages`` (numbered as cited).

    ``generate`` returns the validated answer; ``stream`` yields text deltas as they are
    produced (the caller validates the joined text with ``retrieval.citations.validate``).
    Transient failures of a remote model raise :class:`core.errors.TransientError` before any
    delta is yielded; a failure mid-stream ends the stream early (the text so far is kept).
    """

    @property
    def name(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def fit(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> list[Passage]:
        """The passages this generator will actually use (a model with a context budget drops
        the last ones); answers may cite only these."""
        ...

    def generate(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Answer: ...

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Iterator[str]: ...
