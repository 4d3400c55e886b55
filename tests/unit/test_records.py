"""The pure parts of the records lifecycle: dates and periods, selectors, the retention
evaluation (which policy governs, what an unconfirmed one may do, what a hold keeps), and the
folding and redaction of a person's terms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.domain import DocumentStatus
from core.records import (
    Anchor,
    Disposal,
    DocumentFacts,
    Hold,
    Period,
    RetentionPolicy,
    Selector,
    add_period,
    parse_date,
)
from ingestion.records import evaluate
from ingestion.subjects import REDACTED, clean_terms, entity_keys, fold, redact_text, term_pattern

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 9, tzinfo=UTC)


def facts(doc_id: str, **kw: object) -> DocumentFacts:
    values: dict[str, object] = {
        "id": doc_id,
        "tenant_id": "t",
        "collection": "finance",
        "title": f"doc {doc_id}",
        "tags": frozenset(),
        "metadata": {},
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
        "status": DocumentStatus.READY,
    }
    values.update(kw)
    return DocumentFacts(**values)  # type: ignore[arg-type]


def policy(name: str, selector: Selector, period: Period, **kw: object) -> RetentionPolicy:
    values: dict[str, object] = {
        "id": name,
        "tenant_id": "t",
        "name": name,
        "selector": selector,
        "period": period,
        "anchor": Anchor.DOCUMENT_DATE,
        "action": Disposal.PURGE,
        "confirmed": True,
        "created_by": "test",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(kw)
    return RetentionPolicy(**values)  # type: ignore[arg-type]


def test_dates_parse_strictly_and_periods_follow_the_calendar() -> None:
    assert parse_date("2024-03-15") == datetime(2024, 3, 15, tzinfo=UTC)
    assert parse_date("2024-03") == datetime(2024, 3, 1, tzinfo=UTC)
    assert parse_date("2019") == datetime(2019, 1, 1, tzinfo=UTC)
    assert parse_date("2024-03-15T10:00:00+02:00") == datetime(2024, 3, 15, 8, tzinfo=UTC)
    assert [parse_date(v) for v in ("15/03/2024", "2024-13", "", None, 2024)] == [None] * 5
    assert add_period(datetime(2024, 2, 29, tzinfo=UTC), years=1) == datetime(
        2025, 2, 28, tzinfo=UTC
    )
    assert add_period(datetime(2024, 1, 31, tzinfo=UTC), months=1) == datetime(
        2024, 2, 29, tzinfo=UTC
    )
    assert add_period(datetime(2024, 11, 30, tzinfo=UTC), months=14, days=1) == datetime(
        2026, 1, 31, tzinfo=UTC
    )
    doc = facts("a", metadata={"date": "not a date"})
    assert doc.document_date == doc.created_at  # never a guess


def test_a_selector_matches_when_every_given_field_does() -> None:
    invoice = facts("a", tags=frozenset({"invoice"}), metadata={"correspondent": "ACME"})
    typed = facts("b", metadata={"type": "invoice"})
    assert Selector(type="invoice").matches(invoice) and Selector(type="invoice").matches(typed)
    assert Selector(metadata={"correspondent": "ACME"}).matches(invoice)
    assert not Selector(metadata={"correspondent": "ACME"}).matches(typed)
    assert Selector(collection="finance", tags=("x", "invoice")).matches(invoice)
    assert not Selector(collection="hr", tags=("invoice",)).matches(invoice)
    assert Selector(document_ids=("b",)).matches(typed) and not Selector(
        document_ids=("b",)
    ).matches(invoice)
    assert Selector(title_contains="DOC A").matches(invoice)
    assert not Selector().matches(invoice)  # an empty selector holds nothing
    assert Selector.from_dict(Selector(tags=("a",), metadata={"k": 1}).to_dict()) == Selector(
        tags=("a",), metadata={"k": 1}
    )


def test_the_longest_policy_governs_and_an_unconfirmed_one_disposes_of_nothing() -> None:
    old = facts("old", tags=frozenset({"invoice"}), metadata={"date": "2012-06-01"})
    new = facts("new", tags=frozenset({"invoice"}), metadata={"date": "2020-06-01"})
    cv = facts("cv", metadata={"type": "cv"}, created_at=datetime(2023, 1, 1, tzinfo=UTC))
    trashed = facts("gone", metadata={"type": "cv"}, status=DocumentStatus.TRASHED)
    invoices = policy("invoices", Selector(type="invoice"), Period(years=10))
    cvs = policy(
        "cvs", Selector(type="cv"), Period(years=2), anchor=Anchor.UPLOAD, action=Disposal.TRASH
    )
    due = evaluate([old, new, cv, trashed], [invoices, cvs], [], NOW)
    assert [(d.document_id, d.policy, d.action) for d in due] == [
        ("old", "invoices", Disposal.PURGE),  # due first: 2022-06-01
        ("cv", "cvs", Disposal.TRASH),  # 2025-01-01, two years after its upload
    ]
    assert due[0].due_at == datetime(2022, 6, 1, tzinfo=UTC)
    # A longer policy keeps the old invoice even unconfirmed; a pending one disposes of none.
    ledger = policy("ledger", Selector(tags=("invoice",)), Period(years=30), confirmed=False)
    assert [d.document_id for d in evaluate([old], [invoices, ledger], [], NOW)] == []
    pending = policy("invoices", Selector(type="invoice"), Period(years=10), confirmed=False)
    (waiting,) = evaluate([old], [pending], [], NOW)
    assert not waiting.confirmed


def test_a_hold_is_named_on_what_it_keeps() -> None:
    old = facts("old", metadata={"type": "invoice", "date": "2010-01-01", "correspondent": "ACME"})
    hold = Hold(
        "h", "t", "ACME dispute", "", "x", Selector(metadata={"correspondent": "ACME"}), NOW
    )
    released = Hold("r", "t", "old case", "", "x", Selector(type="invoice"), NOW, released_at=NOW)
    (due,) = evaluate(
        [old], [policy("p", Selector(type="invoice"), Period(years=1))], [hold, released], NOW
    )
    assert due.holds == ("ACME dispute",)


def test_terms_fold_match_whole_words_and_redact_the_original_characters() -> None:
    assert fold("  Hélène   DUPONT ") == "helene dupont"
    pattern = term_pattern(["Hélène Dupont", "h.dupont@acme.fr"])
    assert pattern.search(fold("Signed by HELENE  Dupont."))
    assert not pattern.search(fold("Hélène Dupontel signed"))  # not inside a longer word
    text = "Hélène  Dupont (h.dupont@acme.fr) met helene dupont's lawyer. Straße."
    redacted, n = redact_text(text, pattern)
    assert n == 3 and redacted == (f"{REDACTED} ({REDACTED}) met {REDACTED}'s lawyer. Straße.")
    assert redact_text("nothing here", pattern) == ("nothing here", 0)
    assert {"helene dupont", "ref:hélène dupont"} <= entity_keys(["Hélène Dupont"])
    assert "email:h.dupont@acme.fr" in entity_keys(["H.Dupont@acme.fr"])
    with pytest.raises(Exception, match="terms"):
        clean_terms(["  ", "ab"])
