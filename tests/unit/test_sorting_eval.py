"""Sorting in the evaluation harness: the labelled suite layout, its metrics (accuracy,
macro-F1, field exact match) and the promotion gate holding them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidInput
from evaluation.gate import evaluate_gate, load_policy
from evaluation.release import RELEASES_DIR
from evaluation.sorting_eval import (
    LabelledSuite,
    classification,
    field_matches,
    load_labelled,
)
from evaluation.suites import descriptor, load_suite
from stores.catalog.evaluation import StoredRun
from tests.conftest import FIXTURES, SHARED_DATASETS

pytestmark = pytest.mark.unit


def test_accuracy_and_macro_f1() -> None:
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("c", None)]
    scores = classification(pairs)
    assert scores["accuracy"] == 0.6
    # F1: a = 2*(1*2/3)/(1+2/3) = 0.8, b = 2*(0.5*1)/(1.5) = 0.667, c = 0
    assert scores["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3, abs=1e-4)
    assert classification([])["accuracy"] is None


def test_fields_match_after_normalisation_only_where_the_truth_has_them() -> None:
    truth = {
        "date": "2024-05-29",
        "total_ttc": 6537.66,
        "issuer": {"name": "Conseil Perez EURL", "siret": "27486382806610"},
        "recipient": {"name": "M. Augustin Pineau"},
        "iban": None,
    }
    got = {
        "date": "2024-05-29",
        "total_ttc": 6537.659999,
        "issuer": {"name": "conseil  perez eurl"},
        "recipient": {"name": "Augustin Pineau"},
        "iban": "FR7628023419452945239381602",
    }
    keys = ("date", "total_ttc", "issuer.name", "issuer.siret", "recipient.name", "iban")
    assert field_matches(truth, got, keys) == {
        "date": True,
        "total_ttc": True,
        "issuer.name": True,
        "issuer.siret": False,
        "recipient.name": True,
    }


def test_a_labelled_suite_loads_from_its_manifest() -> None:
    suite = load_labelled("fixtures", FIXTURES / "ged", shots=3)
    assert isinstance(suite, LabelledSuite) and len(suite.documents) == 30
    assert set(suite.vocabulary) == {"invoice", "contract", "quote", "payslip", "letter"}
    assert (
        suite.id.startswith("suite_")
        and suite.id == load_labelled("x", FIXTURES / "ged", shots=3).id
    )
    assert suite.id != load_labelled("fixtures", FIXTURES / "ged", shots=10).id


def test_a_bad_labelled_suite_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(
        '{"id": "x", "file": "missing.pdf", "doc_type": "a"}\n'
    )
    with pytest.raises(InvalidInput, match=r"manifest\.jsonl:1: no file"):
        load_labelled("bad", tmp_path)


def test_the_shipped_ged_docs_suite_names_a_vocabulary() -> None:
    d = descriptor("ged_docs")
    assert d.format == "labelled" and d.shots == 10 and "invoice" in d.vocabulary
    if not (SHARED_DATASETS / "ged_docs" / "manifest.jsonl").is_file():
        pytest.skip("../shared/datasets/ged_docs is absent")
    suite = load_suite("ged_docs", limit=5)
    assert isinstance(suite, LabelledSuite) and len(suite.documents) == 5


def run(scores: dict[str, float], per_doc: list[float], suite_id: str = "s1") -> StoredRun:
    now = datetime.now(UTC)
    results: list[dict[str, Any]] = [
        {"id": f"d{i}", "scores": {"type_accuracy": v}} for i, v in enumerate(per_doc)
    ]
    return StoredRun(
        "r", "rel", "ged_docs", suite_id, "0", "succeeded", scores, {}, now, now, results
    )


def test_the_sorting_gate_holds_floors_and_regressions() -> None:
    policy = load_policy(RELEASES_DIR / "gate-sorting.yaml")
    good = {"type_accuracy": 0.97, "type_macro_f1": 0.96, "field_exact_match": 0.92}
    passed = evaluate_gate(
        policy, run(good, [1.0] * 40), None, candidate_id="c", production_id=None, suite="ged_docs"
    )
    assert passed.passed, passed.reasons
    low = {**good, "type_accuracy": 0.80}
    refused = evaluate_gate(
        policy, run(low, [1.0] * 40), None, candidate_id="c", production_id=None, suite="ged_docs"
    )
    assert (
        not refused.passed and "type_accuracy 0.800 is below the floor 0.950" in refused.reasons[0]
    )
    # Ten documents more typed wrong than production: a significant drop of 0.25.
    worse = evaluate_gate(
        policy,
        run(good, [1.0] * 30 + [0.0] * 10),
        run(good, [1.0] * 40),
        candidate_id="c",
        production_id="p",
        suite="ged_docs",
    )
    assert not worse.passed and any("type_accuracy regressed" in r for r in worse.reasons)
