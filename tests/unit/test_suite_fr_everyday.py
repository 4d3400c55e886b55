"""The held-apart French suite ``fr_everyday`` (issue #21) and the descriptor's ``corpus_path``.

The questions live in the repository (``evaluation/suites/data/fr_everyday``); the corpus is the
shared ``fr_service_public_qa`` one, read from ``../shared``. Checks that need the corpus skip when
``../shared`` is absent; the files' own consistency and the loader option are checked always.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import NotFound
from evaluation import suites
from evaluation.suites import Descriptor, load_from, load_suite
from tests.conftest import SHARED_DATASETS

pytestmark = pytest.mark.unit

DATA = suites.REPO_ROOT / "evaluation" / "suites" / "data" / "fr_everyday"
SHARED_QA = SHARED_DATASETS / "fr_service_public_qa"
needs_shared = pytest.mark.skipif(
    not (SHARED_QA / "corpus.jsonl").is_file(), reason=f"{SHARED_QA} is absent"
)
ANSWER_TYPES = {
    "duration",
    "amount",
    "date",
    "yes_no",
    "procedure",
    "eligibility",
    "documents",
    "other",
}


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def qrels() -> dict[str, set[str]]:
    lines = (DATA / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    out: dict[str, set[str]] = {}
    for line in lines[1:]:
        qid, doc, score = line.split("\t")
        assert score == "1"
        out.setdefault(qid, set()).add(doc)
    return out


# -- the files, without the corpus ----------------------------------------------------------


def test_queries_ragas_rows_and_qrels_describe_the_same_questions() -> None:
    queries = jsonl(DATA / "queries.jsonl")
    ragas = jsonl(DATA / "qa_ragas.jsonl")
    assert [q["_id"] for q in queries] == [f"fre-{n:03d}" for n in range(1, len(queries) + 1)]
    assert [r["id"] for r in ragas] == [q["_id"] for q in queries]
    assert len({q["text"] for q in queries}) == len(queries) >= 120
    relevant = qrels()
    for q, r in zip(queries, ragas, strict=True):
        meta = q["metadata"]
        assert r["question"] == q["text"]
        assert meta["answer_type"] in ANSWER_TYPES
        assert r["is_impossible"] is (not meta["answerable"])
        if meta["answerable"]:
            assert meta["answer"] and meta["supporting_passage"] and meta["doc_id"]
            assert meta["relevant_ids"][0] == meta["doc_id"] == r["doc_id"]
            assert set(meta["relevant_ids"]) == set(r["relevant_ids"]) == relevant[q["_id"]]
            assert r["ground_truth"] == meta["answer"]
            assert r["reference_contexts"] == [meta["supporting_passage"]]
        else:
            assert meta["doc_id"] is None and meta["supporting_passage"] is None
            assert meta["answer"] == "" == r["ground_truth"] == r["doc_id"]
            assert r["reference_contexts"] == [] == r["relevant_ids"]
            assert q["_id"] not in relevant and meta["why_unanswerable"]


def test_counts_and_spread() -> None:
    queries = jsonl(DATA / "queries.jsonl")
    answerable = [q for q in queries if q["metadata"]["answerable"]]
    assert (len(queries), len(answerable)) == (191, 173)
    assert len({q["metadata"]["doc_id"] for q in answerable}) >= 90
    # every answer type is represented, none dominates
    types = [q["metadata"]["answer_type"] for q in queries]
    assert set(types) == ANSWER_TYPES
    assert max(types.count(t) for t in ANSWER_TYPES) < len(queries) / 2


# -- the descriptor's corpus_path -------------------------------------------------------------


def write_split_suite(tmp_path: Path) -> Path:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "corpus.jsonl").write_text(
        '{"_id": "a", "title": "", "text": "x"}\n{"_id": "b", "title": "", "text": "y"}\n'
    )
    (tmp_path / "questions").mkdir()
    row = {"id": "q1", "question": "Y?", "ground_truth": "y", "reference_contexts": ["y"]}
    (tmp_path / "questions" / "q.jsonl").write_text(json.dumps({**row, "doc_id": "b"}) + "\n")
    path = tmp_path / "split.yaml"
    path.write_text(
        "name: split\nformat: ragas\npath: questions\ncorpus_path: corpus\nquestions: q.jsonl\n"
    )
    return path


def test_corpus_path_reads_the_corpus_from_its_own_folder(tmp_path: Path) -> None:
    suite = load_suite(str(write_split_suite(tmp_path)))
    assert [d.id for d in suite.corpus] == ["a", "b"]
    assert [(q.id, q.relevant_ids) for q in suite.questions] == [("q1", ["b"])]


def test_a_missing_corpus_folder_is_named(tmp_path: Path) -> None:
    path = write_split_suite(tmp_path)
    (tmp_path / "corpus" / "corpus.jsonl").unlink()
    (tmp_path / "corpus").rmdir()
    with pytest.raises(NotFound, match=r"no corpus at .*corpus"):
        load_suite(str(path))


def test_the_shipped_descriptor_names_the_repository_questions_and_the_shared_corpus() -> None:
    d = suites.descriptor("fr_everyday")
    assert (d.format, d.questions, d.corpus) == ("ragas", "qa_ragas.jsonl", "corpus.jsonl")
    assert (suites.REPO_ROOT / d.path).resolve() == DATA
    assert d.corpus_path == "../shared/datasets/fr_service_public_qa"


# -- with the shared corpus -------------------------------------------------------------------


@needs_shared
def test_the_suite_loads_and_every_passage_is_verbatim_in_its_fiche() -> None:
    suite = load_suite("fr_everyday")
    assert (len(suite.corpus), len(suite.questions)) == (530, 191)
    assert sum(1 for q in suite.questions if not q.answerable) == 18
    texts = {d.id: d.text for d in suite.corpus}
    queries = {q["_id"]: q["metadata"] for q in jsonl(DATA / "queries.jsonl")}
    for q in suite.questions:
        meta = queries[q.id]
        if not q.answerable:
            assert q.relevant_ids == [] and q.reference == ""
            continue
        assert q.relevant_ids == meta["relevant_ids"]
        assert meta["supporting_passage"] in texts[meta["doc_id"]], q.id
    assert {d for ids in qrels().values() for d in ids} <= set(texts)


@needs_shared
def test_the_beir_layout_of_the_same_folder_loads_with_the_shared_corpus() -> None:
    d = Descriptor(name="fr_everyday_beir", format="beir", path=str(DATA))
    suite = load_from(d, DATA, corpus_root=SHARED_QA)
    ragas = {q.id: q.relevant_ids for q in load_suite("fr_everyday").questions if q.answerable}
    assert {q.id: q.relevant_ids for q in suite.questions} == ragas


@needs_shared
def test_most_questions_point_away_from_the_shared_suites_fiches() -> None:
    shared = {q["metadata"]["doc_id"] for q in jsonl(SHARED_QA / "queries.jsonl")}
    answerable = [q for q in jsonl(DATA / "queries.jsonl") if q["metadata"]["answerable"]]
    on_shared = [q for q in answerable if q["metadata"]["doc_id"] in shared]
    assert len(on_shared) < len(answerable) / 2
    assert all(q["metadata"]["in_shared_suite"] == (q in on_shared) for q in answerable)
