"""Evaluation suites: a corpus, questions, reference answers and/or relevant document ids.

A suite is named by a small descriptor (``evaluation/suites/<name>.yaml``) that points at its
data (``../shared/datasets/...`` relative to the repository, or a path given on the command
line); corpora are never copied into the repository. Two layouts load:

* ``beir``: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
  ``text``, optional ``metadata.answer`` / ``metadata.answers``) and ``qrels/test.tsv``;
* ``ragas``: the corpus as above plus a jsonl of questions with ``question``, ``ground_truth``
  and ``reference_contexts`` (optional ``id``, ``doc_id`` / ``relevant_ids``,
  ``is_impossible``);
* ``feedback``: rated production answers (``gedrag eval suite from-feedback``), one jsonl of
  ragas rows that also carry their ``passages``: the corpus is those passages.

A descriptor may also name ``corpus_path``: the corpus then comes from that folder while the
questions stay in ``path`` (a question set kept in the repository over a shared corpus).

A suite's id is the hash of its content (corpus and questions as loaded), so a changed file is a
different suite. Invalid rows are refused with their file and line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput, NotFound

SUITES_DIR = Path(__file__).with_name("suites")
REPO_ROOT = Path(__file__).resolve().parents[1]


class SuiteError(InvalidInput):
    """A suite file is malformed; the message names the file and line."""

    code = "invalid_suite"


@dataclass(frozen=True)
class CorpusDoc:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    reference: str  # "" when none (or unanswerable)
    reference_contexts: list[str] = field(default_factory=list)
    relevant_ids: list[str] = field(default_factory=list)
    answerable: bool = True


@dataclass(frozen=True)
class Suite:
    name: str
    corpus: list[CorpusDoc]
    questions: list[Question]

    @property
    def corpus_id(self) -> str:
        """The hash of the corpus alone: suites over the same documents share one index."""
        h = hashlib.sha256()
        for d in self.corpus:
            h.update(json.dumps([d.id, d.title, d.text], ensure_ascii=False).encode())
        return "corpus_" + h.hexdigest()[:16]

    @property
    def id(self) -> str:
        h = hashlib.sha256()
        for d in self.corpus:
            h.update(json.dumps([d.id, d.title, d.text], ensure_ascii=False).encode())
        h.update(b"\x1e")
        for q in self.questions:
            row = [q.id, q.question, q.reference, q.reference_contexts, q.relevant_ids]
            h.update(json.dumps([*row, q.answerable], ensure_ascii=False).encode())
        return "suite_" + h.hexdigest()[:16]


class Descriptor(BaseModel):
    """``evaluation/suites/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    format: Literal["beir", "ragas", "labelled", "feedback"]
    path: str = Field(description="Folder of the data, relative to the repository root.")
    corpus: str = "corpus.jsonl"
    corpus_path: str | None = Field(
        default=None,
        description="Folder of the corpus when it is not in ``path``; relative like ``path``.",
    )
    questions: str = Field(default="queries.jsonl", description="beir: queries; ragas: jsonl.")
    qrels: str = "qrels/test.tsv"
    limit: int | None = Field(default=None, ge=1, description="Use the first N questions.")
    licence: str = ""
    # labelled (sorting, evaluation.sorting_eval): the types and the labels given per type.
    vocabulary: dict[str, dict[str, str]] = Field(default_factory=dict)
    shots: int = Field(default=10, ge=0)


class _CorpusRow(BaseModel):
    id: str = Field(alias="_id", min_length=1)
    title: str = ""
    text: str = Field(min_length=1)


class _RagasRow(BaseModel):
    id: str | None = None
    question: str = Field(min_length=1)
    ground_truth: str
    reference_contexts: list[str]
    doc_id: str | None = None
    relevant_ids: list[str] | None = None
    is_impossible: bool = False


class _BeirQuery(BaseModel):
    id: str = Field(alias="_id", min_length=1)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise SuiteError(f"{path}: no such file")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise SuiteError(f"{path}:{n}: expected a JSON object")
            yield n, row


def _row(model: type[BaseModel], path: Path, n: int, row: dict[str, Any]) -> Any:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "row"
            what = "missing field" if e["type"] == "missing" else e["msg"]
            problems.append(f"{loc}: {what}")
        raise SuiteError(f"{path}:{n}: {'; '.join(problems)}") from exc


def load_corpus(path: Path) -> list[CorpusDoc]:
    docs: list[CorpusDoc] = []
    seen: set[str] = set()
    for n, row in _jsonl(path):
        r = _row(_CorpusRow, path, n, row)
        if r.id in seen:
            raise SuiteError(f"{path}:{n}: duplicate document id {r.id!r}")
        seen.add(r.id)
        docs.append(CorpusDoc(r.id, r.title, r.text))
    if not docs:
        raise SuiteError(f"{path}: empty corpus")
    return docs


def load_ragas_questions(path: Path) -> list[Question]:
    out: list[Question] = []
    for n, row in _jsonl(path):
        r = _row(_RagasRow, path, n, row)
        relevant = r.relevant_ids or ([r.doc_id] if r.doc_id else [])
        answerable = not r.is_impossible and bool(r.ground_truth.strip())
        out.append(
            Question(
                id=r.id or f"q{n:05d}",
                question=r.question,
                reference=r.ground_truth if answerable else "",
                reference_contexts=list(r.reference_contexts),
                relevant_ids=relevant if answerable else [],
                answerable=answerable,
            )
        )
    return out


class _FeedbackRow(_RagasRow):
    passages: list[_CorpusRow] = Field(min_length=1)


def load_feedback(path: Path) -> tuple[list[CorpusDoc], list[Question]]:
    """A suite made from rated answers (``gedrag eval suite from-feedback``): one jsonl whose
    rows are ragas rows (the accepted or corrected answer as ``ground_truth``, the cited
    passages as ``reference_contexts`` and, by chunk id, ``relevant_ids``) with ``passages``,
    every passage the answer was chosen from. The corpus is the union of those passages."""
    corpus: dict[str, CorpusDoc] = {}
    same: dict[str, str] = {}  # text -> the first id: two chunks with one text are one document
    out: list[Question] = []
    for n, row in _jsonl(path):
        r = _row(_FeedbackRow, path, n, row)
        alias = {p.id: same.setdefault(p.text, p.id) for p in r.passages}
        for p in r.passages:
            corpus.setdefault(alias[p.id], CorpusDoc(alias[p.id], p.title, p.text))
        out.append(
            Question(
                id=r.id or f"f{n:05d}",
                question=r.question,
                reference=r.ground_truth,
                reference_contexts=list(r.reference_contexts),
                relevant_ids=list(dict.fromkeys(alias.get(i, i) for i in r.relevant_ids or [])),
                answerable=bool(r.ground_truth.strip()),
            )
        )
    if not corpus:
        raise SuiteError(f"{path}: no passages")
    return list(corpus.values()), out


def load_beir_questions(queries: Path, qrels: Path) -> list[Question]:
    if not qrels.is_file():
        raise SuiteError(f"{qrels}: no such file")
    relevant: dict[str, list[str]] = {}
    for n, line in enumerate(qrels.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if n == 1 and parts[0] == "query-id":
            continue
        if len(parts) < 3:
            raise SuiteError(f"{qrels}:{n}: expected query-id, corpus-id, score")
        try:
            score = float(parts[2])
        except ValueError as exc:
            raise SuiteError(f"{qrels}:{n}: score {parts[2]!r} is not a number") from exc
        if score > 0:
            relevant.setdefault(parts[0], []).append(parts[1])
    out: list[Question] = []
    for n, row in _jsonl(queries):
        q = _row(_BeirQuery, queries, n, row)
        if q.id not in relevant:
            continue
        answers = q.metadata.get("answers") or [q.metadata.get("answer") or ""]
        out.append(Question(q.id, q.text, str(answers[0]), [], relevant[q.id]))
    return out


def descriptor_path(name: str) -> Path:
    """A shipped suite by name, or a descriptor file given by path."""
    given = Path(name)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given.resolve()
    path = SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise NotFound(f"no suite named {name!r} (known: {', '.join(known_suites())})")
    return path


def descriptor(name: str) -> Descriptor:
    path = descriptor_path(name)
    try:
        return Descriptor.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise SuiteError(f"{path}: invalid suite descriptor: {exc}") from exc


def suite_name(ref: str) -> str:
    """The name runs are stored under, for a suite named or given by descriptor file."""
    given = Path(ref)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return descriptor(ref).name
    return ref


def known_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name: str, path: Path | None = None, *, limit: int | None = None) -> Suite:
    """The suite ``name``, its data read from the descriptor's path or ``path``."""
    d = descriptor(name)
    where = descriptor_path(name)
    # Shipped descriptors name paths from the repository root; others from their own folder.
    base = REPO_ROOT if where.parent == SUITES_DIR else where.parent
    corpus_root = (base / d.corpus_path).resolve() if d.corpus_path else None
    if d.format == "labelled":
        from evaluation.sorting_eval import load_labelled

        return load_labelled(
            d.name,
            path or (base / d.path).resolve(),
            vocabulary=d.vocabulary or None,
            shots=d.shots,
            limit=limit or d.limit,
        )
    return load_from(
        d, path or (base / d.path).resolve(), limit=limit or d.limit, corpus_root=corpus_root
    )


def load_from(
    d: Descriptor, root: Path, *, limit: int | None = None, corpus_root: Path | None = None
) -> Suite:
    """The suite's questions read from ``root``; its corpus from ``corpus_root``, else ``root``."""
    if not root.is_dir():
        raise NotFound(f"suite {d.name!r}: no data at {root} (give its folder with --path)")
    if corpus_root is not None and not corpus_root.is_dir():
        raise NotFound(f"suite {d.name!r}: no corpus at {corpus_root}")
    match d.format:
        case "feedback":
            corpus, questions = load_feedback(root / d.questions)
        case "ragas":
            corpus = load_corpus((corpus_root or root) / d.corpus)
            questions = load_ragas_questions(root / d.questions)
        case "beir":
            corpus = load_corpus((corpus_root or root) / d.corpus)
            questions = load_beir_questions(root / d.questions, root / d.qrels)
        case _:
            raise SuiteError(f"suite {d.name!r}: a {d.format} suite has no questions to answer")
    if limit:
        questions = questions[:limit]
    ids = {doc.id for doc in corpus}
    for q in questions:
        missing = [r for r in q.relevant_ids if r not in ids]
        if missing:
            raise SuiteError(f"suite {d.name!r}: question {q.id} names unknown documents {missing}")
    if not questions:
        raise SuiteError(f"suite {d.name!r}: no questions")
    return Suite(d.name, corpus, questions)
