"""SparseEncoder: analysis (stopwords, stemming, accents), BM25 weights, stable ids."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from textmodels import sparse
from textmodels.sparse import SparseEncoder, SparseVector, term_id

pytestmark = pytest.mark.unit


@pytest.fixture
def encoder() -> SparseEncoder:
    return SparseEncoder(avg_doc_length=10)


def test_term_ids_are_stable_32_bit_hashes() -> None:
    # Fixed values: a change here means every index built so far is unreadable.
    assert term_id("caiss") == 2078711719
    assert term_id("run") == 3365767514
    assert all(0 <= term_id(word) < 2**32 for word in ("a", "é", "x" * 100))


def test_accents_case_and_stopwords_do_not_matter_in_french(encoder: SparseEncoder) -> None:
    accented = encoder.encode_query("Les Étudiants et la Réglementation", "fr")
    plain = encoder.encode_query("etudiants reglementation", "fr")

    assert accented == plain
    assert len(plain.indices) == 2


def test_snowball_stemming_merges_inflections(encoder: SparseEncoder) -> None:
    assert encoder.term_ids("logement logements", "fr") == [term_id("log")] * 2
    assert encoder.term_ids("running runs", "en") == [term_id("run")] * 2


def test_stopwords_only_gives_an_empty_vector(encoder: SparseEncoder) -> None:
    assert encoder.encode_query("le la les de du des", "fr") == SparseVector([], [])
    assert encoder.encode_document("the of and to is", "en") == SparseVector([], [])


def test_undetermined_language_keeps_numbers_unstemmed(encoder: SparseEncoder) -> None:
    assert encoder.term_ids("2024 2025 2024", "und") == [
        term_id("2024"),
        term_id("2025"),
        term_id("2024"),
    ]


def test_apostrophes_split_elided_articles(encoder: SparseEncoder) -> None:
    assert encoder.term_ids("l'allocation d\u2019allocation", "fr") == [term_id("alloc")] * 2


def test_query_weighs_each_distinct_term_once(encoder: SparseEncoder) -> None:
    vector = encoder.encode_query("nut nuts bolt nut", "en")

    assert vector.indices == sorted({term_id("nut"), term_id("bolt")})
    assert vector.values == [1.0, 1.0]


def test_document_weights_follow_bm25_saturation_and_length() -> None:
    encoder = SparseEncoder(avg_doc_length=4, k1=1.2, b=0.75)

    vector = encoder.encode_document("bolt bolt nut washer", "en")  # |d| = 4 = avg
    weights = dict(zip(vector.indices, vector.values, strict=True))

    assert weights[term_id("bolt")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weights[term_id("nut")] == pytest.approx(2.2 / (1 + 1.2))
    longer = encoder.encode_document("nut washer washer washer washer washer washer washer", "en")
    assert (
        dict(zip(longer.indices, longer.values, strict=True))[term_id("nut")]
        < weights[term_id("nut")]
    )


def test_document_indices_are_sorted_and_unique(encoder: SparseEncoder) -> None:
    text = "Self-locking nuts: the Boots self-locking nut is of one piece, all-metal construction."

    vector = encoder.encode_document(text, "en")

    assert vector.indices == sorted(set(vector.indices))
    assert len(vector.values) == len(vector.indices)
    assert all(value > 0 for value in vector.values)


def test_language_tags_are_routed_by_prefix(encoder: SparseEncoder) -> None:
    assert encoder.term_ids("logements", "fr-FR") == encoder.term_ids("logements", "fr")
    assert encoder.term_ids("logements", "de") == [term_id("logements")]


def test_config_names_version_and_parameters() -> None:
    config = SparseEncoder(avg_doc_length=80, k1=1.5, b=0.5).to_dict()

    assert config["name"] == sparse.SPARSE_ENCODER_NAME
    assert config["version"] == sparse.SPARSE_ENCODER_VERSION
    assert config["params"]["k1"] == 1.5
    assert config["params"]["b"] == 0.5
    assert config["params"]["avg_doc_length"] == 80


@pytest.mark.parametrize("params", [{"avg_doc_length": 0}, {"k1": -1}, {"b": 1.5}])
def test_invalid_parameters_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="avg_doc_length"):
        SparseEncoder(**params)


def test_memo_reset_does_not_change_results(
    encoder: SparseEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Le contrat de location et les charges locatives du logement."
    expected = encoder.encode_document(text, "fr")
    monkeypatch.setattr(sparse, "_CACHE_LIMIT", 2)

    assert encoder.encode_document(text, "fr") == expected
    assert encoder.encode_document(text, "fr") == expected


def test_concurrent_threads_get_identical_vectors(encoder: SparseEncoder) -> None:
    texts = [f"Les allocations familiales numéro {i} et les logements sociaux." for i in range(200)]
    expected = [encoder.encode_document(text, "fr") for text in texts]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda text: SparseEncoder(avg_doc_length=10).encode_document(text, "fr"), texts
            )
        )
        shared = list(pool.map(lambda text: encoder.encode_document(text, "fr"), texts))

    assert results == expected
    assert shared == expected
