"""Releases, suites, metrics, the gate and the reports, without services or models."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidInput, NotFound
from evaluation import report, suites
from evaluation.gate import Policy, evaluate_gate
from evaluation.metrics import mrr, ndcg_at, paired_bootstrap, percentile, retrieval_scores
from evaluation.release import RELEASES_DIR, load_release, parse_release
from evaluation.suites import SuiteError, load_suite
from stores.catalog.evaluation import StoredRun
from tests.conftest import FIXTURES, SHARED_DATASETS
from tests.support.words_embedder import WordsEmbedder

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TINY = FIXTURES / "eval_suite" / "suite.yaml"


# -- releases -------------------------------------------------------------------------------


def test_release_id_is_the_hash_of_the_canonical_config_not_of_the_spelling() -> None:
    default = load_release(RELEASES_DIR / "default.yaml")
    # Every value of default.yaml is a default: a file naming none of them is the same pipeline.
    assert parse_release({"name": "other name"}).id == default.id
    assert default.id.startswith("rel_")
    assert default.config["ingestion"]["embedding"]["revision"]  # the installed revision
    assert default.config["generation"]["prompt_sha256"]


def test_query_time_changes_keep_the_index_ingestion_changes_do_not() -> None:
    base = parse_release({"name": "a"})
    top1 = parse_release({"name": "a", "retrieval": {"top_k": 1}})
    small = parse_release({"name": "a", "ingestion": {"chunking": {"max_tokens": 128}}})
    assert top1.id != base.id and top1.ingestion_id == base.ingestion_id
    assert small.id != base.id and small.ingestion_id != base.ingestion_id


def test_release_settings_overlay_the_pipeline_only(make_settings: Any) -> None:
    settings = make_settings()
    worse = load_release(RELEASES_DIR / "dense-top1.yaml")
    applied = worse.settings(settings)
    assert applied.retrieval.mode == "dense" and applied.retrieval.top_k == 1
    assert applied.data_dir == settings.data_dir
    served = worse.serving_overlay(settings)
    assert served.retrieval.top_k == 1 and served.chunking == settings.chunking


def test_a_bad_release_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"retrieval\.top_kk"):
        parse_release({"name": "x", "retrieval": {"top_kk": 3}})
    with pytest.raises(InvalidInput, match=r"retrieval\.mode"):
        parse_release({"name": "x", "retrieval": {"mode": "telepathy"}})
    with pytest.raises(InvalidInput, match="prompt template"):
        parse_release({"name": "x", "generation": {"prompt": "v9"}})


# -- suites ---------------------------------------------------------------------------------


def write_suite(root: Path, rows: list[str]) -> Path:
    (root / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "Some text."}) + "\n"
    )
    (root / "q.jsonl").write_text("\n".join(rows) + "\n")
    path = root / "suite.yaml"
    path.write_text("name: mini\nformat: ragas\npath: .\nquestions: q.jsonl\n")
    return path


def row(**values: Any) -> str:
    base = {"question": "Q?", "ground_truth": "A.", "reference_contexts": ["Some text."]}
    return json.dumps({**base, **values})


def test_a_suite_file_with_missing_fields_is_rejected_with_the_line_number(tmp_path: Path) -> None:
    bad = json.loads(row())
    del bad["ground_truth"]
    path = write_suite(tmp_path, [row(), row(question="Other?"), json.dumps(bad)])
    with pytest.raises(SuiteError) as caught:
        load_suite(str(path))
    assert "q.jsonl:3: ground_truth: missing field" in caught.value.detail


def test_invalid_json_and_unknown_documents_are_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, [row(), "{not json"])
    with pytest.raises(SuiteError, match=r"q\.jsonl:2: not valid JSON"):
        load_suite(str(path))
    path = write_suite(tmp_path, [row(relevant_ids=["nope"])])
    with pytest.raises(SuiteError, match=r"unknown documents \['nope'\]"):
        load_suite(str(path))
    with pytest.raises(NotFound, match="no suite named 'missing'"):
        load_suite("missing")


def test_suite_id_is_the_content_hash(tmp_path: Path) -> None:
    path = write_suite(tmp_path, [row()])
    first = load_suite(str(path))
    assert load_suite(str(path)).id == first.id
    write_suite(tmp_path, [row(ground_truth="Another answer.")])
    assert load_suite(str(path)).id != first.id


def test_tiny_fixture_suite_loads_with_an_unanswerable_question() -> None:
    suite = load_suite(str(TINY))
    assert suite.name == "tiny" and len(suite.corpus) == 8 and len(suite.questions) == 9
    unanswerable = [q for q in suite.questions if not q.answerable]
    assert [q.id for q in unanswerable] == ["u1"] and unanswerable[0].relevant_ids == []
    assert all(len(q.relevant_ids) == 2 for q in suite.questions if q.answerable)


def test_beir_layout_loads(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "a", "title": "", "text": "x"}\n{"_id": "b", "title": "", "text": "y"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "x?", "metadata": {"answers": ["x"]}}\n{"_id": "q2", "text": "z?"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tb\t1\n")
    d = suites.Descriptor(name="b", format="beir", path=".")
    suite = suites.load_from(d, tmp_path)
    assert [(q.id, q.reference, q.relevant_ids) for q in suite.questions] == [("q1", "x", ["b"])]


def test_every_shipped_suite_descriptor_parses() -> None:
    assert {"fr_service_public_qa", "squad_v2_dev_subset"} <= set(suites.known_suites())
    for name in suites.known_suites():
        assert suites.descriptor(name).name == name


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason=f"{SHARED_DATASETS} is absent")
def test_shipped_suites_read_the_shared_datasets() -> None:
    fr = load_suite("fr_service_public_qa")
    assert (len(fr.corpus), len(fr.questions)) == (530, 105)
    squad = load_suite("squad_v2_dev_subset")
    assert len(squad.questions) == 250
    assert sum(1 for q in squad.questions if not q.answerable) == 50


# -- metrics --------------------------------------------------------------------------------


def test_retrieval_metrics() -> None:
    assert ndcg_at(["a", "b"], {"a"}) == 1.0
    assert ndcg_at(["x", "a"], {"a"}) == pytest.approx(1 / 1.5849625, rel=1e-6)
    assert mrr(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    # chunks of one document count once; recall over what the release retrieved
    scores = retrieval_scores(["a", "a", "x"], ["a", "b"])
    assert scores["recall@k"] == 0.5 and scores["mrr"] == 1.0
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([5, 1, 3, 2, 4], 95) == 5


def test_paired_bootstrap_separates_consistent_changes_from_noise() -> None:
    constant = paired_bootstrap([-0.5] * 10)
    assert (constant.mean, constant.low, constant.high) == (-0.5, -0.5, -0.5)
    noise = paired_bootstrap([0.4, -0.4, 0.3, -0.3, 0.2, -0.25, 0.1, -0.1])
    assert noise.low < 0 < noise.high
    assert paired_bootstrap([0.1, -0.3, 0.2], seed=1) == paired_bootstrap([0.1, -0.3, 0.2], seed=1)


# -- gate -----------------------------------------------------------------------------------


def run(release: str, per_question: list[float], metric: str = "ndcg@10") -> StoredRun:
    results = [
        {"id": f"q{i}", "question": "?", "answer": "", "grounded": True, "scores": {metric: v}}
        for i, v in enumerate(per_question)
    ]
    mean = sum(per_question) / len(per_question)
    now = datetime.now(UTC)
    return StoredRun(
        f"run-{release}",
        release,
        "s",
        "suite_1",
        "v",
        "succeeded",
        {metric: mean},
        {},
        now,
        now,
        results,
    )


POLICY = Policy(floors={"ndcg@10": 0.5}, max_regression={"ndcg@10": 0.02})


def gate(candidate: StoredRun | None, production: StoredRun | None) -> Any:
    return evaluate_gate(
        POLICY,
        candidate,
        production,
        candidate_id="rel_new",
        production_id=production.release_id if production else None,
        suite="s",
    )


def test_gate_refuses_below_a_floor_and_without_a_run() -> None:
    low = gate(run("rel_new", [0.4] * 8), None)
    assert not low.passed and low.reasons == ["ndcg@10 0.400 is below the floor 0.500"]
    missing = gate(None, None)
    assert not missing.passed and "no finished evaluation" in missing.reasons[0]
    assert gate(run("rel_new", [0.9] * 8), None).passed


def test_gate_refuses_a_consistent_regression_with_its_interval() -> None:
    prod = run("rel_prod", [0.9] * 12)
    result = gate(run("rel_new", [0.7] * 12), prod)
    assert not result.passed
    assert re.fullmatch(
        r"ndcg@10 regressed by 0\.200 against production rel_prod \(allowed 0\.020; paired 95% "
        r"CI of the difference \[-0\.200, -0\.200\] over 12 questions\)",
        result.reasons[0],
    )
    assert result.evidence["comparisons"]["ndcg@10"]["regression"] is True


def test_gate_lets_noise_pass_and_passes_a_better_release() -> None:
    prod = run("rel_prod", [0.8] * 8)
    noisy = [0.8 + d for d in (0.4, -0.5, 0.2, -0.3, 0.1, -0.2, 0.15, -0.1)]  # mean -0.03
    result = gate(run("rel_new", noisy), prod)
    assert result.passed, result.reasons
    assert result.evidence["comparisons"]["ndcg@10"]["ci_low"] < 0
    assert gate(run("rel_new", [0.95] * 8), prod).passed


def test_gate_needs_production_scores_on_the_same_suite() -> None:
    result = evaluate_gate(
        POLICY, run("rel_new", [0.9] * 3), None, candidate_id="n", production_id="p", suite="s"
    )
    assert not result.passed and "production release p has no evaluation" in result.reasons[0]


# -- reports --------------------------------------------------------------------------------


def test_html_report_is_self_contained_with_bars_and_scatter() -> None:
    cand, prod = run("rel_new", [0.9, 0.5, 1.0]), run("rel_prod", [0.7, 0.6, 1.0])
    page = report.to_html(cand, "new", others=[("prod", prod)], baseline=("prod", prod))
    assert page.count("<svg") >= 2 and "<rect" in page and page.count("<circle") == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page
    md = report.to_markdown(cand, "new")
    assert "| ndcg@10 | 0.8000 |" in md
    assert json.loads(report.to_json(cand, "new"))["results"][0]["id"] == "q0"


# -- RAGAS ----------------------------------------------------------------------------------


def test_ragas_non_llm_metrics_score_with_ragas_code() -> None:
    from evaluation.ragas_metrics import NON_LLM, RagasScorer, Sample

    scorer = RagasScorer(WordsEmbedder())
    assert scorer.names == list(NON_LLM)  # no judge configured: no LLM-judged metric
    ctx = "Parental leave lasts sixteen weeks at full salary."
    exact = scorer.score(
        Sample("How long?", ctx, ctx, [ctx, "Unrelated canteen text."], [ctx], ["a", "b"], ["a"])
    )
    assert exact["semantic_similarity"] == pytest.approx(1.0)
    assert exact["rouge_score"] == pytest.approx(1.0)
    assert exact["non_llm_string_similarity"] == pytest.approx(1.0)
    assert exact["id_based_context_recall"] == 1.0
    assert exact["id_based_context_precision"] == 0.5
    assert exact["non_llm_context_recall"] == 1.0
    wrong = scorer.score(Sample("How long?", "Badges are blue.", ctx, ["x"], [ctx], ["b"], ["a"]))
    assert wrong["id_based_context_recall"] == 0.0 and wrong["semantic_similarity"] < 0.5
    # no reference contexts: the metrics that need them are not invented
    bare = scorer.score(Sample("How long?", ctx, ctx, [ctx], [], [], []))
    assert bare["non_llm_context_recall"] is None and bare["id_based_context_recall"] is None


def fake_judge() -> Any:
    """An OpenAI-compatible endpoint (httpx.MockTransport) answering RAGAS's JSON prompts
    by the schema each prompt asks for: every statement supported, every context useful."""
    import httpx

    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        calls.append(prompt)
        if '"noncommittal"' in prompt:
            content: dict[str, Any] = {"question": "How long is parental leave?", "noncommittal": 0}
        elif '"verdict"' in prompt and '"statements"' in prompt:
            content = {"statements": [{"statement": "s", "reason": "in context", "verdict": 1}]}
        elif '"statements"' in prompt:
            content = {"statements": ["Parental leave lasts sixteen weeks."]}
        else:
            content = {"reason": "useful", "verdict": 1}
        message = {"role": "assistant", "content": json.dumps(content)}
        return httpx.Response(
            200,
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": "judge",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            },
        )

    from evaluation.ragas_metrics import Judge

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Judge("http://judge.test/v1", "judge", None, 10, http_client=client), calls


def test_llm_judged_ragas_metrics_run_when_a_judge_is_configured() -> None:
    from evaluation.ragas_metrics import LLM_JUDGED, NON_LLM, RagasScorer, Sample

    judge, calls = fake_judge()
    scorer = RagasScorer(WordsEmbedder(), judge)
    assert scorer.names == [*NON_LLM, *LLM_JUDGED]
    ctx = "Parental leave lasts sixteen weeks at full salary."
    scores = scorer.score(
        Sample("How long is parental leave?", ctx, ctx, [ctx], [ctx], ["a"], ["a"])
    )
    assert scores["faithfulness"] == 1.0
    assert scores["answer_relevancy"] == pytest.approx(1.0)
    assert scores["llm_context_precision_with_reference"] == pytest.approx(1.0, abs=1e-6)
    assert calls and scorer.judge_errors == 0


def test_a_failing_judge_leaves_its_metrics_unscored() -> None:
    import httpx

    from evaluation.ragas_metrics import Judge, RagasScorer, Sample

    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    scorer = RagasScorer(
        WordsEmbedder(), Judge("http://judge.test/v1", "j", None, 5, down, max_retries=0)
    )
    scores = scorer.score(Sample("Q?", "A.", "A.", ["A."], ["A."], ["a"], ["a"]))
    assert scores["faithfulness"] is None and scores["answer_relevancy"] is None
    assert scores["rouge_score"] == 1.0 and scorer.judge_errors == 3


def test_the_namespace_of_a_run_is_embedded_whatever_production_uses(make_settings: Any) -> None:
    from pydantic import SecretStr

    from core.settings import CatalogSettings, EvaluationSettings, Neo4jSettings, QdrantSettings
    from evaluation.runner import judge_from, namespace_settings

    prod = make_settings(
        catalog=CatalogSettings(url="postgresql://db/gedrag"),
        qdrant=QdrantSettings(url="http://qdrant:6333"),
        graph={"backend": "neo4j"},
        neo4j=Neo4jSettings(uri="bolt://neo4j:7687", password=SecretStr("x")),
    )
    worse = load_release(RELEASES_DIR / "dense-top1.yaml")
    ns = namespace_settings(prod, worse, Path("/tmp/ns"))
    assert ns.catalog_url.startswith("sqlite:////tmp/ns/")
    assert ns.qdrant.url is None and ns.qdrant_path == Path("/tmp/ns/qdrant")
    assert ns.graph.backend == "relational" and ns.retrieval.top_k == 1
    assert judge_from(prod) is None
    judged = make_settings(
        evaluation=EvaluationSettings(judge_url="http://vllm:8000/v1", judge_model="m")
    )
    judge = judge_from(judged)
    assert judge is not None and (judge.url, judge.model) == ("http://vllm:8000/v1", "m")
