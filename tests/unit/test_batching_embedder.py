"""The batching embedder: concurrent callers share model calls and each gets its own vectors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.words_embedder import WordsEmbedder
from textmodels.embedding import BatchingEmbedder


class GatedModel(WordsEmbedder):
    """Records each call's size; the first call waits until the test opens the gate, so other
    callers queue up behind it as they do behind a real model call."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        if len(self.calls) == 1:
            assert self.gate.wait(10)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model failed")
        return super().embed(texts)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_lone_caller_runs_at_once_with_its_own_vectors() -> None:
    model = GatedModel()
    model.gate.set()
    batcher = BatchingEmbedder(model, max_texts=8)
    texts = ["alpha beta", "gamma", "delta epsilon"]
    assert batcher.embed(texts) == WordsEmbedder().embed(texts)
    assert batcher.embed([]) == []
    assert model.calls == [3]


def test_callers_waiting_behind_a_call_share_the_next_one_and_get_their_own_vectors() -> None:
    model = GatedModel()
    batcher = BatchingEmbedder(model, max_texts=64)
    docs = [[f"doc{i} chunk{j} text{i * j}" for j in range(i + 1)] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.embed, docs[0])
        _wait_for(lambda: model.calls == [1])  # the first caller's call is running
        rest = [pool.submit(batcher.embed, d) for d in docs[1:]]
        _wait_for(lambda: len(batcher._pending) == 5)
        model.gate.set()
        results = [first.result(10)] + [f.result(10) for f in rest]
    for doc, vectors in zip(docs, results, strict=True):
        assert vectors == WordsEmbedder().embed(doc)
    # Five documents (2+3+4+5+6 = 20 texts) in one call after the first.
    assert model.calls == [1, 20]


def test_no_call_exceeds_max_texts_unless_one_caller_alone_does() -> None:
    model = GatedModel()
    batcher = BatchingEmbedder(model, max_texts=5)
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batcher.embed, ["x"])
        _wait_for(lambda: len(model.calls) == 1)
        sizes = [3, 3, 7, 2]
        futures = []
        for queued, n in enumerate(sizes, start=1):  # queued in this order
            texts = [f"caller{queued} t{n} {k}" for k in range(n)]  # distinct: none reused
            futures.append(pool.submit(batcher.embed, texts))
            _wait_for(lambda q=queued: len(batcher._pending) == q)
        model.gate.set()
        first.result(10)
        for n, f in zip(sizes, futures, strict=True):
            assert len(f.result(10)) == n
    assert model.calls[0] == 1
    assert model.calls[1:] == [3, 3, 7, 2]  # 3+3 > 5; 7 alone; 2 after it
    assert all(c <= 5 for c in model.calls if c != 7)


def test_a_model_error_reaches_every_caller_of_that_call_and_the_batcher_goes_on() -> None:
    model = GatedModel(fail_on="poison")
    batcher = BatchingEmbedder(model, max_texts=64)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.embed, ["warm"])
        _wait_for(lambda: len(model.calls) == 1)
        bad = pool.submit(batcher.embed, ["poison"])
        _wait_for(lambda: len(batcher._pending) == 1)
        neighbour = pool.submit(batcher.embed, ["innocent"])
        _wait_for(lambda: len(batcher._pending) == 2)
        model.gate.set()
        assert first.result(10) == WordsEmbedder().embed(["warm"])
        for f in (bad, neighbour):
            with pytest.raises(RuntimeError, match="model failed"):
                f.result(10)
    assert batcher.embed(["after"]) == WordsEmbedder().embed(["after"])
    assert not batcher._leading


def test_many_threads_hammering_get_exactly_their_vectors() -> None:
    model = GatedModel()
    model.gate.set()
    batcher = BatchingEmbedder(model, max_texts=16)

    def call(i: int) -> tuple[int, list[list[float]]]:
        texts = [f"caller {i} piece {k}" for k in range(1 + i % 4)]
        return i, batcher.embed(texts)

    with ThreadPoolExecutor(8) as pool:
        for i, vectors in pool.map(call, range(200)):
            assert vectors == WordsEmbedder().embed(
                [f"caller {i} piece {k}" for k in range(1 + i % 4)]
            )
    assert sum(model.calls) == sum(1 + i % 4 for i in range(200))
    assert not batcher._leading and not batcher._pending


def test_callers_sharing_a_call_get_their_own_span_vectors() -> None:
    model = GatedModel()
    batcher = BatchingEmbedder(model, max_texts=64)
    texts = ["first one. second one.", "alpha beta gamma. delta."]
    spans = [[(0, 10), (11, 22)], [(0, 17), (18, 24)]]
    with ThreadPoolExecutor(3) as pool:
        warm = pool.submit(batcher.embed, ["warm"])
        _wait_for(lambda: model.calls == [1])
        shared = [
            pool.submit(batcher.embed_spans, [t], [s]) for t, s in zip(texts, spans, strict=True)
        ]
        _wait_for(lambda: len(batcher._pending) == 2)
        model.gate.set()
        warm.result(10)
        results = [f.result(10)[0] for f in shared]
    words = WordsEmbedder()
    for text, own, (vector, parts) in zip(texts, spans, results, strict=True):
        assert vector == words.embed([text])[0]
        assert parts == words.embed([text[a:b] for a, b in own])
    assert len(model.calls) == 2  # both callers in one call after the first


def test_identical_and_recent_texts_are_embedded_once() -> None:
    """The same chunk in two documents of one batch is one model input; a chunk embedded
    recently (a new version's unchanged section) is not embedded again; the memo is bounded."""
    model = GatedModel()
    model.gate.set()
    seen: list[str] = []
    inner_embed = model.embed

    def recording(texts: Sequence[str]) -> list[list[float]]:
        seen.extend(texts)
        return inner_embed(texts)

    model.embed = recording  # type: ignore[method-assign]
    batcher = BatchingEmbedder(model, max_texts=64, recent=3)
    first = ["footer legal notice", "invoice one", "footer legal notice"]
    assert batcher.embed(first) == WordsEmbedder().embed(first)
    assert seen == ["footer legal notice", "invoice one"]
    second = ["footer legal notice", "invoice two"]
    assert batcher.embed(second) == WordsEmbedder().embed(second)
    assert seen[2:] == ["invoice two"]
    assert batcher.reused == 2
    batcher.embed(["a", "b", "c"])  # pushes the older texts out of the memo (3 kept)
    batcher.embed(["invoice one"])
    assert seen[-1] == "invoice one"
