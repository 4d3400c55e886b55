"""Sorting in the evaluation harness, end to end: a labelled suite (the 30 ged documents of
tests/fixtures/ged) ingested into its own namespace, labelled, sorted, scored and stored; a
second run reuses the index; the sorting gate reads the stored run."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from evaluation import runner
from evaluation.gate import evaluate_gate, load_policy
from evaluation.release import RELEASES_DIR, load_release
from evaluation.sorting_eval import LabelledSuite
from evaluation.suites import load_suite
from stores.catalog import Catalog
from stores.catalog.evaluation import EvalStore
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_labelled_suite_is_scored_stored_and_gated(tmp_path: Path) -> None:
    descriptor = tmp_path / "ged.yaml"
    descriptor.write_text(
        "name: ged-fixtures\nformat: labelled\n"
        f"path: {FIXTURES / 'ged'}\nshots: 3\n"
        "vocabulary:\n"
        "  invoice: {name: Facture / Invoice, description: a bill requesting payment}\n"
        "  contract: {name: Contrat / Contract, description: an agreement with clauses}\n"
        "  quote: {name: Devis / Quote, description: an estimate before a sale}\n"
        "  payslip: {name: Bulletin de paie / Payslip, description: a monthly pay statement}\n"
        "  letter: {name: Lettre / Letter, description: a letter to an addressee}\n"
    )
    suite = load_suite(str(descriptor))
    assert isinstance(suite, LabelledSuite) and suite.shots == 3
    settings = Settings(data_dir=tmp_path / "var")
    settings.data_dir.mkdir()
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    store = EvalStore(catalog)
    release = load_release(RELEASES_DIR / "default.yaml")
    first = runner.run(settings, release, suite, store)
    assert first.state == "succeeded" and first.suite == "ged-fixtures"
    # 30 documents, 3 labelled per type (only 2 quotes, payslips and letters exist: all 2).
    assert first.info["labelled"] == 12 and first.info["scored"] == 18
    assert len(first.results) == 18
    assert set(first.scores) == {"type_accuracy", "type_macro_f1", "field_exact_match"}
    assert first.scores["type_accuracy"] >= 0.8
    assert first.scores["field_exact_match"] >= 0.7
    assert all(r["scores"]["type_accuracy"] in (0.0, 1.0) for r in first.results)
    again = runner.run(settings, release, suite, store)
    assert again.scores == first.scores and again.info["ingest_s"] < first.info["ingest_s"]
    policy = load_policy(RELEASES_DIR / "gate-sorting.yaml").model_copy(
        update={"floors": {"type_accuracy": 0.5}}
    )
    verdict = evaluate_gate(
        policy, again, first, candidate_id="b", production_id="a", suite="ged-fixtures"
    )
    assert verdict.passed, verdict.reasons
    catalog.dispose()
