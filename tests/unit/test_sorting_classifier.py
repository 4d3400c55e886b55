"""The per-tenant type classifier: a zero-shot start from names and descriptions, learning from
labels (a new label changes the next prediction), calibrated confidence."""

from __future__ import annotations

import random

import pytest

from sorting.classifier import T_GRID, TypeClassifier
from sorting.features import Features, document_features
from sorting.vocabulary import Entry, entry_from
from textmodels.sparse import SparseEncoder

pytestmark = pytest.mark.unit

SPARSE = SparseEncoder()
TYPES = [
    entry_from(
        {
            "kind": "type",
            "key": "invoice",
            "name": "Facture / Invoice",
            "description": "a bill requesting payment: total HT, TVA, total TTC, IBAN",
        }
    ),
    entry_from(
        {
            "kind": "type",
            "key": "contract",
            "name": "Contrat / Contract",
            "description": "an agreement between parties: articles, clauses, duration, signatures",
        }
    ),
    entry_from(
        {
            "kind": "type",
            "key": "minutes",
            "name": "Procès-verbal / Minutes",
            "description": "the record of a meeting: attendees, agenda, resolutions, votes",
        }
    ),
]


def feats(text: str) -> Features:
    return document_features(text, SPARSE)


def invoice(n: int) -> str:
    return (
        f"Société {n} SARL\nFACTURE N° F-{n}\nDate 12/03/2024\nTotal HT {n},00 €\n"
        f"TVA 20 % {n // 5},00 €\nTotal TTC\nIBAN FR76 ..."
    )


def contract(n: int) -> str:
    return (
        f"CONTRAT DE PRESTATION n° C-{n}\nEntre les soussignés la société {n} et le client\n"
        "Article 1 : objet. Article 2 : durée. Article 3 : résiliation. Signatures."
    )


def minutes(n: int) -> str:
    return (
        f"PROCÈS-VERBAL de l'assemblée générale n° {n}\nSont présents : les associés.\n"
        "Ordre du jour. Première résolution adoptée à l'unanimité."
    )


def corpus() -> list[Features]:
    return [feats(f(n)) for n in range(5) for f in (invoice, contract, minutes)]


def test_zero_shot_ranks_types_from_their_names_and_descriptions() -> None:
    model = TypeClassifier(TYPES, [], corpus(), SPARSE)
    assert not model.learned
    for text, key in ((invoice(7), "invoice"), (contract(7), "contract"), (minutes(7), "minutes")):
        p = model.predict(feats(text))
        assert p.reason == "zero-shot" and p.best is not None and p.best[0] == key
        assert abs(sum(prob for _, prob in p.ranked) - 1) < 1e-5


def test_labels_teach_a_type_its_name_does_not_describe() -> None:
    """'Order' names nothing in these documents: zero-shot cannot find it, three labels can,
    and one more label (a correction) changes the next prediction."""
    order = entry_from({"kind": "type", "key": "order", "name": "Order"})
    types = [*TYPES, order]

    def po(n: int) -> str:
        return f"BON DE COMMANDE n° CMD{n}\nQuantité livrée, date de livraison souhaitée {n}"

    target = feats(po(99))
    zero = TypeClassifier(types, [], corpus(), SPARSE)
    assert dict(zero.predict(target).ranked)["order"] < 0.5
    examples = [("order", feats(po(n))) for n in range(3)]
    examples += [(k, feats(f(n))) for n in range(3) for k, f in (("invoice", invoice),)]
    learned = TypeClassifier(types, examples, corpus(), SPARSE)
    p = learned.predict(target)
    assert learned.learned and p.reason == "classifier" and p.best is not None
    assert p.best[0] == "order"
    # A document both ways: labelled as an invoice, the next one like it leans to invoice.
    mixed = po(5) + "\nRèglement à réception de facture."
    before = dict(learned.predict(feats(mixed)).ranked)
    assert before["invoice"] < 0.99
    corrected = TypeClassifier(types, [*examples, ("invoice", feats(mixed))], corpus(), SPARSE)
    after = dict(corrected.predict(feats(po(6) + "\nRèglement à réception de facture.")).ranked)
    assert after["invoice"] > before["invoice"]


def test_types_outside_the_vocabulary_are_never_predicted() -> None:
    examples = [("deleted-type", feats(invoice(n))) for n in range(3)]
    model = TypeClassifier(TYPES, examples, corpus(), SPARSE)
    assert not model.learned  # the only label is no type any more
    assert {k for k, _ in model.predict(feats(invoice(1))).ranked} == {e.key for e in TYPES}


def test_confidence_is_calibrated_by_cross_validation() -> None:
    """Consistent labels give confident, right predictions; labels that contradict each other
    (random types for the same kind of text) give low confidence instead of false certainty."""
    rng = random.Random(0)
    consistent = [
        (k, feats(f(n)))
        for n in range(6)
        for k, f in (("invoice", invoice), ("contract", contract), ("minutes", minutes))
    ]
    good = TypeClassifier(TYPES, consistent, corpus(), SPARSE)
    assert good.temperature in T_GRID
    sure = [good.predict(feats(f(50 + n))) for n in range(3) for f in (invoice, contract, minutes)]
    assert all(p.best is not None and p.best[1] > 0.8 for p in sure)
    keys = [e.key for e in TYPES]
    noisy = [(rng.choice(keys), feats(invoice(n))) for n in range(18)]
    bad = TypeClassifier(TYPES, noisy, corpus(), SPARSE)
    unsure = [bad.predict(feats(invoice(100 + n))).best for n in range(5)]
    assert all(b is not None and b[1] < 0.8 for b in unsure)
    assert bad.temperature >= good.temperature


def test_features_round_trip_through_json() -> None:
    f = document_features("FACTURE N° 1\nTotal TTC 10,00 €", SPARSE, embedding=[0.6, 0.8])
    again = Features.from_dict(f.to_dict())
    assert again == f and f.head and f.terms


def _entry(key: str) -> Entry:
    return entry_from({"kind": "type", "key": key, "name": key})
